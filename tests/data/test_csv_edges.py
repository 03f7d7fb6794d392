"""``csv:PATH`` edge cases (issue 17): non-finite and huge values, odd headers and line ends; every refusal is one
DataError naming the column and the row as a spreadsheet numbers it (the header is row 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wattless.data._csv import MAX_REGRESSION_TARGET, load_csv
from wattless.data._split import split_indices
from wattless.errors import DataError
from wattless.testing import assert_user_error, run_cli

N_ROWS = 40
BAD_ROW = 7
"""0-based data row holding the odd value: spreadsheet row 9 (header row 1, first data row 2)."""


def _write(tmp_path: Path, header: str, rows: list[str], *, newline: str = "\n", bom: bool = False,
           name: str = "t.csv") -> Path:
    path = tmp_path / name
    text = newline.join([header, *rows]) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def _table(tmp_path: Path, a=lambda i: f"{i}", y=lambda i: f"{i % 2}", header: str = "a,b,y", **options) -> Path:
    return _write(tmp_path, header, [f"{a(i)},{i * 0.5},{y(i)}" for i in range(N_ROWS)], **options)


def _odd(value: str, otherwise=lambda i: f"{i}"):
    return lambda i: value if i == BAD_ROW else otherwise(i)


@pytest.mark.parametrize(
    ("a", "y", "message"),
    [
        (_odd("inf"), None, "column 'a', row 9: infinite value inf"),
        (_odd("-inf"), None, "column 'a', row 9: infinite value -inf"),
        (_odd("1e999"), None, "column 'a', row 9: infinite value inf"),  # beyond float64
        (lambda i: f"{(i + 1) * 1e300}", None, rf"column 'a', row {N_ROWS + 1}: value 4e\+301 is too large to "
                                              "standardize; rescale the column"),
        (None, _odd("inf", lambda i: f"{i * 1.5}"), "column 'y', row 9: infinite value inf in target column"),
        (None, _odd("1e300", lambda i: f"{i * 1.5}"), r"column 'y', row 9: regression target 1e\+300 is beyond "
                                                      r"\+-1e\+15"),
        (None, _odd("-3e19", lambda i: f"{i * 1.5}"), r"column 'y', row 9: regression target -3e\+19"),
    ],
)
def test_non_finite_and_huge_values_name_the_column_and_row(tmp_path, a, y, message):
    path = _table(tmp_path, **{key: f for key, f in (("a", a), ("y", y)) if f is not None})
    with pytest.raises(DataError, match=message) as error:
        load_csv(path, target="y")
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_value_that_leaves_float32_once_standardized_is_refused(tmp_path):
    y = np.arange(N_ROWS) % 2
    in_train = {seed: BAD_ROW in split_indices(y, "classification", split_seed=seed)[0] for seed in range(20)}
    path = _table(tmp_path, a=_odd("1e100"))
    inside = next(seed for seed, kept in in_train.items() if kept)
    assert np.isfinite(load_csv(path, target="y", split_seed=inside).X_test).all()  # the scale is about 1e99
    outside = next(seed for seed, kept in in_train.items() if not kept)  # the scale is about 10: beyond float32
    with pytest.raises(DataError, match=r"column 'a', row 9: value 1e\+100 is too far from the train rows' values"):
        load_csv(path, target="y", split_seed=outside)


def test_row_numbers_count_empty_lines_and_the_rows_of_missing_targets(tmp_path):
    rows = [f"{'inf' if i == BAD_ROW else i},{i},{'' if i == 2 else i % 2}" for i in range(N_ROWS)]
    path = _write(tmp_path, "a,b,y", rows[:3] + [""] + rows[3:])  # an empty line after row 4
    with pytest.warns(UserWarning, match="dropped 1 rows"), pytest.raises(DataError, match="column 'a', row 10:"):
        load_csv(path, target="y")


def test_nan_strings_and_empty_cells_are_missing_values_imputed_with_the_median(tmp_path):
    path = _table(tmp_path, a=lambda i: {3: "nan", 4: "", 5: "NaN"}.get(i, str(i)))
    data = load_csv(path, target="y")
    for X in (data.X_train, data.X_val, data.X_test):
        assert np.isfinite(X).all()
    assert data.preprocessing["numeric"][0]["column"] == "a"


def test_huge_but_standardizable_values_load(tmp_path):
    data = load_csv(_table(tmp_path, a=lambda i: f"{(i + 1) * 1e100}"), target="y")
    assert np.isfinite(data.X_train).all() and abs(float(data.X_train[:, 0].mean())) < 1e-5


def test_a_regression_target_at_the_bound_loads(tmp_path):
    path = _table(tmp_path, y=lambda i: f"{MAX_REGRESSION_TARGET * (-1) ** i * (i + 1) / N_ROWS}")
    assert load_csv(path, target="y", task="regression").y_train.dtype == np.float32


def test_duplicate_column_names_are_refused(tmp_path):
    path = _table(tmp_path, header="a,y,y")
    with pytest.raises(DataError, match=r"column name 'y' appears twice in the header \(columns 2 and 3\)"):
        load_csv(path, target="y")


@pytest.mark.parametrize("options", [{"bom": True}, {"newline": "\r\n"}, {"bom": True, "newline": "\r\n"}])
def test_a_bom_and_crlf_line_ends_read_like_a_plain_file(tmp_path, options):
    plain = load_csv(_table(tmp_path, name="plain.csv"), target="y")
    other = load_csv(_table(tmp_path, name="other.csv", **options), target="a")  # "a" is the BOM's column
    assert other.preprocessing["numeric"][0]["column"] == "b"
    again = load_csv(_table(tmp_path, name="other.csv", **options), target="y")
    np.testing.assert_array_equal(plain.X_train, again.X_train)
    assert [s["column"] for s in again.preprocessing["numeric"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("a,b,y", [], "has a header but no data rows"),
        ("a,b,y", ["", "", ""], "has a header but no data rows"),
        ("y", [str(i % 2) for i in range(N_ROWS)], "no feature columns besides the target 'y'"),
        ("a,y", [f"{i},1" for i in range(N_ROWS)], r"target column 'y' has a single class \('1'\)"),
    ],
)
def test_degenerate_files(tmp_path, header, rows, message):
    with pytest.raises(DataError, match=message):
        load_csv(_write(tmp_path, header, rows), target="y")


def test_the_cli_prints_one_error_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _table(tmp_path, a=_odd("inf"))
    result = run_cli("train", "--model", "mlp", "--dataset", f"csv:{path}", "--target", "y", "--epochs", "1",
                     "-o", "m.wlz")
    assert_user_error(result, "column 'a', row 9: infinite value inf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_huge_whole_numbers_as_class_labels_stay_distinct(tmp_path):
    data = load_csv(_table(tmp_path, y=lambda i: f"{(i % 2 + 1) * 1e300}"), target="y")
    assert data.task == "classification" and data.classes == ["1e+300", "2e+300"]


def test_empty_lines_before_the_header_and_whitespace_lines_count_as_rows(tmp_path):
    rows = [f"{'inf' if i == BAD_ROW else i},{i},{i % 2}" for i in range(N_ROWS)]
    path = _write(tmp_path, "\n\na,b,y", rows[:2] + ["   "] + rows[2:])  # header on row 3, a blank row 6
    with pytest.raises(DataError, match="column 'a', row 12:"):
        load_csv(path, target="y")
