"""UniMiB SHAR loader on small .mat files in the published layout, written here with scipy.io.savemat."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from wattless.data import _unimib, load_dataset
from wattless.errors import DataError

ACC_NAMES = [
    "StandingUpFS", "StandingUpFL", "Walking", "Running", "GoingUpS", "Jumping", "GoingDownS", "LyingDownFS",
    "SittingDown", "FallingForw", "FallingRight", "FallingBack", "HittingObstacle", "FallingWithPS",
    "FallingBackSC", "Syncope", "FallingLeft",
]  # fmt: skip


def _cells(rows):
    cells = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, row in enumerate(rows):
        cells[i] = row
    return cells


def write_unimib(folder, *, subset="acc", names=ACC_NAMES, n_subjects=10, per_pair=2, seed=0):
    """``{subset}_data/labels/names.mat``: ``per_pair`` windows per (subject, class); returns x, y, z and labels."""
    rng = np.random.default_rng(seed)
    labels = np.array(
        [(c + 1, s + 1, t + 1) for s in range(n_subjects) for c in range(len(names)) for t in range(per_pair)],
        dtype=np.float64,  # MATLAB doubles, as in the published files
    )
    axes = [rng.normal(loc, scale, size=(len(labels), _unimib.WINDOW)) for loc, scale in ((0, 3), (9.8, 1), (-1, 2))]
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{subset}_data.mat", {f"{subset}_data": np.concatenate(axes, axis=1)})
    scipy.io.savemat(folder / f"{subset}_labels.mat", {f"{subset}_labels": labels})
    descriptions = [f"description of {name}" for name in names]
    scipy.io.savemat(folder / f"{subset}_names.mat", {f"{subset}_names": _cells([descriptions, names])})
    return axes, labels


@pytest.fixture
def root(isolated_lookup):
    return isolated_lookup / "arg"


def test_shapes_classes_and_the_axis_order(root):
    axes, labels = write_unimib(root)
    data = load_dataset("unimib-shar", data_dir=str(root))
    assert data.classes == ACC_NAMES and data.num_outputs == 17 and data.input_shape == (3, 151)
    assert data.preprocessing["class_descriptions"][2] == "description of Walking"
    assert sum(len(data.split(s)[1]) for s in ("train", "val", "test")) == len(labels) == 340
    assert data.X_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert set(data.y_train.tolist()) == set(range(17))
    mean, std = (np.array(data.preprocessing[key])[:, None] for key in ("mean", "std"))
    test_rows = np.flatnonzero(np.isin(labels[:, 1], data.preprocessing["split"]["test_subjects"]))
    for axis, values in enumerate(axes):  # 151 x, then 151 y, then 151 z values per row
        np.testing.assert_allclose(data.X_test[:, axis] * std[axis] + mean[axis], values[test_rows], atol=1e-4)
    np.testing.assert_array_equal(data.y_test, labels[test_rows, 0] - 1)
    json.dumps(data.describe())


def test_split_is_by_subject_and_seeded(root):
    write_unimib(root)
    data = load_dataset("unimib-shar", data_dir=str(root))
    split = data.preprocessing["split"]
    assert split["by"] == "subject" and len(split["test_subjects"]) == 2 and len(split["val_subjects"]) == 1
    assert not set(split["test_subjects"]) & set(split["val_subjects"])
    assert [len(data.y_train), len(data.y_val), len(data.y_test)] == [7 * 34, 34, 2 * 34]
    again = load_dataset("unimib-shar", data_dir=str(root))
    other = load_dataset("unimib-shar", data_dir=str(root), split_seed=1)
    assert again.preprocessing["split"] == split and other.preprocessing["split"] != split
    np.testing.assert_array_equal(again.X_test, data.X_test)


def test_subject_split_keeps_each_subject_in_one_part():
    subjects = np.repeat(np.arange(1, 31), 5)
    train, val, test, split = _unimib.subject_split(subjects, split_seed=3)
    parts = [set(subjects[rows].tolist()) for rows in (train, val, test)]
    assert [len(p) for p in parts] == [21, 3, 6] and set().union(*parts) == set(range(1, 31))
    assert parts[2] == set(split["test_subjects"]) and parts[1] == set(split["val_subjects"])
    with pytest.raises(DataError, match="2 subjects are too few"):
        _unimib.subject_split(np.array([1, 1, 2]), split_seed=0)


def test_channels_are_standardized_with_train_statistics_only(root):
    axes, labels = write_unimib(root)
    data = load_dataset("unimib-shar", data_dir=str(root))
    np.testing.assert_allclose(data.X_train.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=(0, 2)), 1, atol=1e-5)
    assert data.preprocessing["mean"][1] != pytest.approx(axes[1].mean(), abs=1e-9)  # not all subjects' mean
    assert data.preprocessing["units"] == "m/s^2" and data.preprocessing["channels"] == ["x", "y", "z"]


@pytest.mark.parametrize("inner", [".", "data", "UniMiB-SHAR/data"])
def test_found_in_the_folder_its_data_folder_or_the_unzipped_layout(isolated_lookup, monkeypatch, inner):
    write_unimib(isolated_lookup / "env" / "unimib-shar" / inner)
    monkeypatch.setenv("WATTLESS_DATA", str(isolated_lookup / "env"))
    assert load_dataset("unimib-shar").source == str(isolated_lookup / "env" / "unimib-shar" / inner)


def test_adl_and_fall_subsets(root):
    write_unimib(root, subset="adl", names=ACC_NAMES[:9])
    write_unimib(root, subset="fall", names=ACC_NAMES[9:])
    assert load_dataset("unimib-shar-adl", data_dir=str(root)).classes == ACC_NAMES[:9]
    assert load_dataset("unimib-shar-fall", data_dir=str(root)).num_outputs == 8
    with pytest.raises(DataError, match="unknown UniMiB SHAR subset 'two'"):
        _unimib.load_unimib_shar(data_dir=str(root), subset="two")


def _save(path, name, value):
    scipy.io.savemat(path, {name: value})


@pytest.mark.parametrize(
    ("file", "damage", "message"),
    [
        ("acc_data.mat", lambda p: _save(p, "acc_data", np.zeros((340, 450))), r"expected numbers of shape \(n, 453\)"),
        ("acc_data.mat", lambda p: _save(p, "other", np.zeros(3)), "no variable 'acc_data' \\(found: other\\)"),
        ("acc_data.mat", lambda p: p.write_bytes(p.read_bytes()[:5000]), "not a readable .mat file"),
        ("acc_data.mat", lambda p: p.write_bytes(b"garbage" * 50), "not a readable .mat file"),
        ("acc_data.mat", lambda p: p.write_bytes(b""), "not a readable .mat file"),
        ("acc_labels.mat", lambda p: _save(p, "acc_labels", np.ones((339, 3))), "expected 340 rows of"),
        ("acc_labels.mat", lambda p: _save(p, "acc_labels", np.full((340, 3), 18.0)), "class id 18 is out of range"),
        ("acc_labels.mat", lambda p: _save(p, "acc_labels", np.full((340, 3), 1.5)), "must be whole numbers"),
        ("acc_names.mat", lambda p: _save(p, "acc_names", _cells([[""] * 17, [""] * 17])), "no usable class names"),
    ],
    ids=["data-width", "no-variable", "truncated", "garbage", "empty", "row-count", "class-range", "fractional",
         "blank-names"],
)
def test_each_damaged_file_gives_one_clear_error_naming_it(root, file, damage, message):
    write_unimib(root)
    damage(root / file)
    with pytest.raises(DataError, match=message) as error:
        load_dataset("unimib-shar", data_dir=str(root))
    assert file in str(error.value) and "\n" not in str(error.value)


def test_non_finite_values_are_refused(root):
    write_unimib(root)
    data = scipy.io.loadmat(root / "acc_data.mat")["acc_data"]
    data[3, 7] = np.nan
    _save(root / "acc_data.mat", "acc_data", data)
    with pytest.raises(DataError, match="acc_data.mat: holds NaN or infinite values"):
        load_dataset("unimib-shar", data_dir=str(root))


def test_missing_files_error_names_the_files_and_where_to_get_them(isolated_lookup):
    with pytest.raises(DataError, match="'unimib-shar' not found.*WATTLESS_DATA.*--data-dir") as error:
        load_dataset("unimib-shar")
    message = str(error.value)
    assert all(f"acc_{part}.mat" in message for part in ("data", "labels", "names"))
    assert _unimib.HOME_URL in message and str(isolated_lookup / "cache" / "unimib-shar") in message
