"""``csv:PATH`` data sets: mixed columns, train-only statistics, task inference and every error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattless.data import load_dataset
from wattless.data._csv import load_csv
from wattless.errors import DataError

N_ROWS = 60
UNIQUE_COLOR_ROW = 59


def _mixed_frame() -> pd.DataFrame:
    rows = np.arange(N_ROWS)
    colors = np.array(["red", "blue", "green"], dtype=object)[rows % 3]
    colors[rows % 9 == 4] = None
    colors[UNIQUE_COLOR_ROW] = "violet"
    return pd.DataFrame(
        {
            "row_id": rows,
            "age": np.where(rows % 7 == 3, np.nan, 20.0 + (rows * 37) % 50),
            "color": colors,
            "flag": rows % 2 == 0,
            "label": np.where(rows % 4 == 0, "yes", "no"),
        }
    )


def _write(tmp_path: Path, frame: pd.DataFrame, name: str = "table.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _column(data, name):
    return data.preprocessing["feature_names"].index(name)


def _restore_numeric(data, X, name):
    stats = next(s for s in data.preprocessing["numeric"] if s["column"] == name)
    return X[:, _column(data, f"numeric__{name}")].astype(np.float64) * stats["std"] + stats["mean"]


def test_mixed_columns_are_imputed_one_hot_encoded_and_standardized(tmp_path):
    data = load_csv(_write(tmp_path, _mixed_frame()), target="label")
    prep = data.preprocessing
    assert data.task == "classification" and data.classes == ["no", "yes"]
    assert [s["column"] for s in prep["numeric"]] == ["row_id", "age"]
    assert [s["column"] for s in prep["categorical"]] == ["color", "flag"]
    assert prep["feature_names"][:2] == ["numeric__row_id", "numeric__age"]
    assert "categorical__flag_True" in prep["feature_names"]
    assert data.input_shape == (len(prep["feature_names"]),)
    for X in (data.X_train, data.X_val, data.X_test):
        assert X.dtype == np.float32 and np.isfinite(X).all()
    np.testing.assert_allclose(data.X_train[:, :2].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(data.X_train[:, :2].std(axis=0), 1, atol=1e-5)
    one_hot = data.X_train[:, 2:]
    assert set(np.unique(one_hot)) == {0.0, 1.0} and (one_hot.sum(axis=1) == 2).all()  # one color, one flag
    json.dumps(data.describe())


def test_missing_values_are_imputed_with_the_train_median(tmp_path):
    frame = _mixed_frame()
    data = load_csv(_write(tmp_path, frame), target="label")
    train_rows = np.round(_restore_numeric(data, data.X_train, "row_id")).astype(int)
    stats = next(s for s in data.preprocessing["numeric"] if s["column"] == "age")
    assert stats["median"] == frame["age"].iloc[train_rows].median()
    test_rows = np.round(_restore_numeric(data, data.X_test, "row_id")).astype(int)
    imputed = frame["age"].iloc[test_rows].isna().to_numpy()
    assert imputed.any()
    restored_age = _restore_numeric(data, data.X_test, "age")
    np.testing.assert_allclose(restored_age[imputed], stats["median"], atol=1e-4)


def test_a_category_unseen_in_train_encodes_as_all_zeros(tmp_path):
    path = _write(tmp_path, _mixed_frame())
    for seed in range(20):
        data = load_csv(path, target="label", split_seed=seed)
        color = next(s for s in data.preprocessing["categorical"] if s["column"] == "color")
        if "violet" not in color["categories"]:
            break
    color_columns = [_column(data, f"categorical__color_{c}") for c in color["categories"]]
    X_held_out = np.concatenate([data.X_val, data.X_test])
    held_out_rows = np.round(_restore_numeric(data, X_held_out, "row_id")).astype(int)
    assert (X_held_out[held_out_rows == UNIQUE_COLOR_ROW][:, color_columns] == 0).all()
    assert color["most_frequent"] in ("red", "blue", "green")


@pytest.mark.parametrize(
    "target, expected",
    [
        (np.linspace(0.5, 9.5, N_ROWS), "regression"),  # floats
        (np.arange(N_ROWS) * 3, "regression"),  # integers, many distinct values
        (np.arange(N_ROWS) % 5, "classification"),  # integers, few distinct values
        (np.where(np.arange(N_ROWS) % 3 == 0, "cat", "dog"), "classification"),
        (np.arange(N_ROWS) % 2 == 0, "classification"),
    ],
)
def test_task_is_inferred_from_the_target(tmp_path, target, expected):
    frame = pd.DataFrame({"x": np.arange(N_ROWS, dtype=float), "y": target})
    data = load_csv(_write(tmp_path, frame), target="y")
    assert data.task == expected
    assert data.y_train.dtype == (np.int64 if expected == "classification" else np.float32)


def test_regression_targets_keep_their_units_and_task_can_be_forced(tmp_path):
    frame = pd.DataFrame({"x": np.arange(N_ROWS, dtype=float), "y": np.arange(N_ROWS) % 5 * 1000})
    path = _write(tmp_path, frame)
    assert load_csv(path, target="y").classes == ["0", "1000", "2000", "3000", "4000"]
    data = load_dataset(f"csv:{path}", target="y", task="regression")
    assert data.task == "regression" and data.classes is None
    targets = np.sort(np.concatenate([data.y_train, data.y_val, data.y_test]))
    np.testing.assert_array_equal(targets, np.sort(frame["y"].to_numpy()))


def test_split_is_stratified_seeded_and_named(tmp_path):
    path = _write(tmp_path, _mixed_frame())
    first, again, other = (load_csv(path, target="label", split_seed=seed) for seed in (0, 0, 1))
    assert [len(first.y_train), len(first.y_val), len(first.y_test)] == [42, 6, 12]
    assert first.y_test.mean() == 0.25 and first.y_train.mean() == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(first.X_train, again.X_train)
    assert not np.array_equal(first.X_test, other.X_test)
    assert first.name == "csv:table.csv" and first.source == str(path.resolve())


def test_rows_without_a_target_are_dropped_with_their_count(tmp_path):
    frame = _mixed_frame()
    frame.loc[[1, 2], "label"] = None
    with pytest.warns(UserWarning, match="dropped 2 rows with no value in target 'label'"):
        data = load_csv(_write(tmp_path, frame), target="label")
    assert sum(len(y) for y in (data.y_train, data.y_val, data.y_test)) == N_ROWS - 2
    assert data.preprocessing["dropped_rows_missing_target"] == 2


def test_an_entirely_empty_column_is_ignored_with_a_warning(tmp_path):
    frame = _mixed_frame().assign(blank=np.nan)
    with pytest.warns(UserWarning, match="ignoring columns with no values: blank"):
        data = load_csv(_write(tmp_path, frame), target="label")
    assert not any("blank" in name for name in data.preprocessing["feature_names"])


def test_columns_with_values_only_outside_train_are_kept(tmp_path):
    rare = np.full(N_ROWS, np.nan)
    rare[0] = 1.5
    frame = _mixed_frame().assign(rare_number=rare, rare_text=np.where(np.isnan(rare), None, "x"))
    path = _write(tmp_path, frame)
    for seed in range(6):  # row 0 lands in train for some seeds, in val/test for others
        names = load_csv(path, target="label", split_seed=seed).preprocessing["feature_names"]
        assert "numeric__rare_number" in names and any(n.startswith("categorical__rare_text") for n in names)


def _error_cases(tmp_path: Path):
    frame = _mixed_frame()
    table = _write(tmp_path, frame)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "broken.csv").write_text('a,b\n1,2\n"3,4\n')
    (tmp_path / "binary.csv").write_bytes(bytes(range(128, 256)) * 4)
    return {
        "missing": (tmp_path / "nope.csv", "label", None, "does not exist"),
        "folder": (tmp_path, "label", None, "does not exist or is not a file"),
        "empty": (tmp_path / "empty.csv", "label", None, "is empty"),
        "header only": (tmp_path / "header.csv", "a", None, "no data rows"),
        "unparsable": (tmp_path / "broken.csv", "a", None, "not a readable CSV"),
        "binary": (tmp_path / "binary.csv", "a", None, "not a readable CSV"),
        "no target": (table, None, None, r"pass --target COLUMN \(one of: row_id, age, color"),
        "unknown target": (table, "lable", None, "no column 'lable'; the columns are: row_id"),
        "no features": (_write(tmp_path, frame[["label"]], "t.csv"), "label", None, "no feature columns"),
        "one class": (_write(tmp_path, frame.assign(label="yes"), "o.csv"), "label", None, "single class"),
        "text regression": (table, "label", "regression", "not numeric.*--task classification"),
        "bad task": (table, "label", "clustering", "unknown task 'clustering'"),
        "no targets": (_write(tmp_path, frame.assign(label=np.nan), "n.csv"), "label", None, "has no values"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "folder", "empty", "header only", "unparsable", "binary", "no target", "unknown target",
     "no features", "one class", "text regression", "bad task", "no targets"],
)  # fmt: skip
def test_every_mistake_is_one_clear_data_error(tmp_path, case):
    path, target, task, message = _error_cases(tmp_path)[case]
    with pytest.raises(DataError, match=message) as error:
        load_csv(path, target=target, task=task)
    assert "\n" not in str(error.value)
