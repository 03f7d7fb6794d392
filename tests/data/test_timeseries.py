"""UEA/UCR .ts reader and loaders: small files written here (valid and each unsupported case), real BasicMotions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from wattless.data import _timeseries, load_dataset
from wattless.data._timeseries import load_ts, read_ts
from wattless.errors import DataError

HEADER = {
    "problemName": "Toy",
    "timeStamps": "false",
    "missing": "false",
    "univariate": "false",
    "dimensions": "3",
    "equalLength": "true",
    "seriesLength": "8",
    "classLabel": "true walk run sit",
}


def _series_line(x, label):
    return ":".join(",".join(f"{v:.6f}" for v in channel) for channel in x) + f":{label}"


def write_ts(path, X, labels, *, header=None, lines=None):
    """A .ts file of ``X`` (n, channels, length) with ``labels``; ``header`` overrides tags, ``lines`` the data."""
    tags = {**HEADER, **(header or {})}
    text = ["# a comment line", *(f"@{tag} {value}".rstrip() for tag, value in tags.items() if value is not None)]
    text += ["@data", *(lines if lines is not None else map(_series_line, X, labels))]
    path.write_text("\n".join(text) + "\n")
    return path


def write_pair(folder, *, n_train=18, n_test=12, name="Toy", seed=0, classes=("walk", "run", "sit")):
    """``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` with 3 channels x 8 steps, classes cycling; returns the arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    header = {"classLabel": "true " + " ".join(classes)}
    arrays = {}
    for part, n in (("TRAIN", n_train), ("TEST", n_test)):
        X = rng.normal(loc=[[5.0], [-2.0], [0.0]], scale=[[1.0], [3.0], [0.5]], size=(n, 3, 8))
        labels = [classes[i % len(classes)] for i in range(n)]
        write_ts(folder / f"{name}_{part}.ts", X, labels, header=header)
        arrays[part] = (np.round(X, 6), labels)
    return arrays


def test_read_ts_parses_header_and_series(tmp_path):
    arrays = write_pair(tmp_path)
    parsed = read_ts(tmp_path / "Toy_TRAIN.ts")
    assert parsed.problem == "Toy" and parsed.class_labels == ["walk", "run", "sit"]
    np.testing.assert_allclose(parsed.X, arrays["TRAIN"][0])
    assert parsed.labels == arrays["TRAIN"][1]


def test_shapes_sorted_classes_and_a_stratified_validation_split(tmp_path):
    arrays = write_pair(tmp_path)
    data = load_ts(str(tmp_path / "Toy"))
    assert data.name == f"ts:{tmp_path / 'Toy'}" and data.classes == ["run", "sit", "walk"]
    assert data.X_train.shape == (12, 3, 8) and data.X_val.shape == (6, 3, 8) and data.X_test.shape == (12, 3, 8)
    assert data.X_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert np.bincount(data.y_val).tolist() == [2, 2, 2]  # at least MIN_VAL_PER_CLASS per class
    expected_test = [data.classes.index(label) for label in arrays["TEST"][1]]
    np.testing.assert_array_equal(data.y_test, expected_test)
    json.dumps(data.describe())


def test_channels_are_standardized_with_train_statistics_only(tmp_path):
    arrays = write_pair(tmp_path)
    data = load_ts(str(tmp_path))  # ts:DIR with a single *_TRAIN.ts
    np.testing.assert_allclose(data.X_train.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=(0, 2)), 1, atol=1e-5)
    mean, std = (np.array(data.preprocessing[key])[:, None] for key in ("mean", "std"))
    np.testing.assert_allclose(data.X_test * std + mean, arrays["TEST"][0], atol=1e-4)
    all_train = arrays["TRAIN"][0]
    assert data.preprocessing["mean"][0] != pytest.approx(all_train[:, 0].mean(), abs=1e-9)


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    write_pair(tmp_path)
    first, again = (load_ts(str(tmp_path / "Toy"), split_seed=0) for _ in range(2))
    other = load_ts(str(tmp_path / "Toy"), split_seed=1)
    np.testing.assert_array_equal(first.X_val, again.X_val)
    assert not np.array_equal(first.y_val, other.y_val) or not np.array_equal(first.X_val, other.X_val)
    np.testing.assert_array_equal(first.y_test, other.y_test)  # the test file does not depend on the seed


def test_numeric_labels_sort_as_numbers(tmp_path):
    write_pair(tmp_path, classes=("10", "2", "1"))
    assert load_ts(str(tmp_path / "Toy")).classes == ["1", "2", "10"]


def test_validation_size_rule():
    assert _timeseries.validation_size(40, 4) == 8  # BasicMotions: 2 per class, not 10% (4)
    assert _timeseries.validation_size(1000, 4) == 100  # 10% when that is more
    assert _timeseries.validation_size(12, 10) == 6  # never more than half


def _one_line_file(tmp_path, line="1,2:3,4:walk", **header):
    return write_ts(tmp_path / "Bad_TRAIN.ts", None, None, header={"dimensions": "2", "seriesLength": "2", **header},
                    lines=[line])


@pytest.mark.parametrize(
    ("header", "line", "message"),
    [
        ({"timeStamps": "true"}, None, r":3: time stamps \(@timeStamps true\) are not supported"),
        ({"equalLength": "false"}, None, r":7: series of unequal length .* not supported"),
        ({"classLabel": "false"}, None, r":9: files without class labels .* not supported"),
        ({"classLabel": "true"}, None, r":9: @classLabel true lists no labels"),
        ({"targetLabel": "true"}, None, r":10: regression files \(@targetLabel\) are not supported"),
        ({"univariate": "maybe"}, None, r":5: @univariate must be true or false, found 'maybe'"),
        ({"seriesLength": "eight"}, None, r":8: @seriesLength needs a positive whole number"),
        ({"colour": "blue"}, None, r":10: unknown header @colour"),
        ({}, "1,?:3,4:walk", r":11: missing values \('\?'\) are not supported"),
        ({}, "1,NaN:3,4:walk", r":11: NaN or infinite values are not supported"),
        ({}, "1,x:3,4:walk", r":11: 'x' is not a number"),
        ({}, "1,2,3:3,4:walk", r":11: channels have different lengths \[2, 3\]"),
        ({}, "1,2:3,4:swim", r":11: class label 'swim' is not among the declared ones \(walk run sit\)"),
        ({}, "1,2,3,4", r":11: expected 'values:...:label'"),
        ({}, "1,2:3,4:5,6:walk", "the header declares 2 dimensions but the series have 3"),
        ({"seriesLength": "3"}, None, "@seriesLength 3 but the series have 2 values"),
    ],
)
def test_each_unsupported_or_corrupt_case_names_file_and_line(tmp_path, header, line, message):
    path = _one_line_file(tmp_path, **({"line": line} if line else {}), **header)
    with pytest.raises(DataError, match=message) as error:
        read_ts(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize("second", ["1,2,3:3,4,5:run", "1,2:run"])
def test_a_series_unlike_the_first_is_named(tmp_path, second):
    path = write_ts(tmp_path / "Bad_TRAIN.ts", None, None, header={"dimensions": None, "seriesLength": None},
                    lines=["1,2:3,4:walk", second])
    with pytest.raises(DataError, match=r"Bad_TRAIN.ts:10: series of \(channels, length\) .* after \(2, 2\)"):
        read_ts(path)


def test_missing_true_alone_is_fine(tmp_path):
    assert read_ts(_one_line_file(tmp_path, missing="true")).X.shape == (1, 2, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@problemName X\n@classLabel true a\n", "no @data line"),
        ("@problemName X\n@classLabel true a\n@data\n", "no series after @data"),
        ("@problemName X\n@data\n1,2:a\n", r":2: @data comes before any @classLabel"),
        ("1,2:a\n", r":1: expected a @header line before @data"),
    ],
)
def test_structural_errors(tmp_path, text, message):
    path = tmp_path / "X_TRAIN.ts"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_ts(path)


def test_train_and_test_files_must_match(tmp_path):
    write_pair(tmp_path)
    write_ts(tmp_path / "Toy_TEST.ts", np.zeros((3, 2, 8)), ["walk", "run", "sit"], header={"dimensions": "2"})
    with pytest.raises(DataError, match="Toy_TEST.ts: series are .* different data sets"):
        load_ts(str(tmp_path / "Toy"))


@pytest.mark.parametrize("spec", ["nowhere/Toy", "{tmp}/Other", "{tmp}"])
def test_ts_spec_errors(tmp_path, spec):
    write_pair(tmp_path / "a", name="A")
    write_pair(tmp_path / "a", name="B")
    spec = spec.format(tmp=tmp_path / "a")
    several = r"2 \*_TRAIN.ts files \(A_TRAIN.ts, B_TRAIN.ts\), not exactly one"
    with pytest.raises(DataError, match=rf"ts:.*(not found; use ts:DIR/NAME|{several})"):
        load_ts(spec)


def test_basic_motions_checksums_are_verified(isolated_lookup):
    folder = isolated_lookup / "arg"
    write_pair(folder, name="BasicMotions")
    with pytest.raises(DataError, match="BasicMotions_TRAIN.ts: sha256 .* the published 8dc43cc6"):
        load_dataset("basic-motions", data_dir=str(folder))


def test_basic_motions_not_found_names_files_and_what_to_do(isolated_lookup):
    with pytest.raises(DataError, match="'basic-motions' not found.*WATTLESS_DATA.*--data-dir") as error:
        load_dataset("basic-motions")
    message = str(error.value)
    assert all(file in message for file in _timeseries.BASIC_MOTIONS) and "timeseriesclassification.com" in message
    assert str(isolated_lookup / "cache" / "basic-motions") in message


REAL_DATA = os.environ.get("WATTLESS_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data"
"""Read at import, before the isolated_lookup fixture clears WATTLESS_DATA."""


def _real_basic_motions() -> Path:
    folder = Path(REAL_DATA) / "basic-motions"
    if not all((folder / file).is_file() for file in _timeseries.BASIC_MOTIONS):
        pytest.skip(f"BasicMotions is not in {folder}")
    return folder


def test_real_basic_motions(isolated_lookup):
    data = load_dataset("basic-motions", data_dir=str(_real_basic_motions()))
    assert data.classes == ["Badminton", "Running", "Standing", "Walking"]
    assert [len(data.y_train), len(data.y_val), len(data.y_test)] == [32, 8, 40]
    assert data.input_shape == (6, 100) and data.preprocessing["problem"] == "BasicMotions"
    assert np.bincount(data.y_val).tolist() == [2] * 4 and np.bincount(data.y_test).tolist() == [10] * 4
    np.testing.assert_allclose(data.X_train.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=(0, 2)), 1, atol=1e-5)
    assert json.loads(json.dumps(data.describe()))["classes"] == data.classes


def test_real_basic_motions_through_ts_prefix_gives_the_same_arrays(isolated_lookup):
    folder = _real_basic_motions()
    copy = shutil.copytree(folder, isolated_lookup / "copy")
    registered = load_dataset("basic-motions", data_dir=str(folder))
    generic = load_ts(str(copy / "BasicMotions"))
    np.testing.assert_array_equal(registered.X_test, generic.X_test)
    np.testing.assert_array_equal(registered.y_val, generic.y_val)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@problemName X\n@\n@classLabel true a\n@data\n1,2:a\n", r":2: a lone '@' is not a header"),
        ("@problemName X\n@classLabel true a\n@data\n1,2:\n", r":4: the series has no class label after its last"),
        ("@problemName X\n@classLabel true a\n@data\n1,inf:a\n", r":4: NaN or infinite values are not supported"),
        ("@problemName X\n@classLabel true a\n@data\n1,1e999:a\n", r":4: NaN or infinite values are not supported"),
        ("@problemName X\n@classLabel true a\n@data\n1,nan:a\n", r":4: NaN or infinite values are not supported"),
        ("@problemName X\n@classLabel true a\n@data\n1,2:a\n1,2,3:a\n", r":5: series of \(channels, length\)"),
    ],
)
def test_more_corrupt_lines_are_named(tmp_path, text, message):
    path = tmp_path / "X_TRAIN.ts"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_ts(path)


def _with_value(path, series, channel, value):
    """Rewrite the first value of ``channel`` (0-based) of data line ``series`` (0-based) of a written file."""
    lines = path.read_text().splitlines()
    row = lines.index("@data") + 1 + series
    channels = lines[row].split(":")
    channels[channel] = ",".join([value, *channels[channel].split(",")[1:]])
    lines[row] = ":".join(channels)
    path.write_text("\n".join(lines) + "\n")
    return row + 1


def test_a_value_too_large_to_standardize_is_named_by_line(tmp_path):
    write_pair(tmp_path)
    line = _with_value(tmp_path / "Toy_TRAIN.ts", 4, 1, "-1e300")
    with pytest.raises(DataError, match=rf"Toy_TRAIN.ts:{line}: value -1e\+300 of channel 2 is too large to "
                                        "standardize"):
        load_ts(str(tmp_path / "Toy"))


def test_a_test_value_beyond_float32_once_standardized_is_named_by_line(tmp_path):
    write_pair(tmp_path)
    line = _with_value(tmp_path / "Toy_TEST.ts", 2, 0, "1e100")
    with pytest.raises(DataError, match=rf"Toy_TEST.ts:{line}: value 1e\+100 of channel 1 is too far from the "
                                        "train series' values"):
        load_ts(str(tmp_path / "Toy"))
