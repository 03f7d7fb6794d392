"""``csv:PATH`` data sets: a user's own table with one target column.

Numeric feature columns are imputed with their train median and standardized; categorical ones
(text, bool) are imputed with their most frequent train value and one-hot encoded, a category unseen
in train becoming all zeros. Every statistic comes from the train split only.

Empty cells and ``nan`` are missing values; empty lines are skipped. An infinite value, a number too large to
standardize, a duplicate column name or a regression target beyond float32 is a DataError naming the column and the
row as a spreadsheet numbers it (the header is row 1).
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ._dataset import Dataset, register_prefix
from ._split import Task, split_indices

MAX_INFERRED_CLASSES = 20
"""An integer-valued target with at most this many distinct values is taken as class labels."""
MAX_REGRESSION_TARGET = 1e15
"""Largest magnitude of a regression target: models train in float32, whose squared errors (and the targets'
variance, which zoo models scale their output by) overflow near 1.8e19; 1e15 leaves room for sums over many rows."""


@register_prefix("csv:")
def load_csv(
    path: str | os.PathLike[str], *, target: str | None, task: Task | None = None, split_seed: int = 0
) -> Dataset:
    """Load a CSV file whose column ``target`` holds the labels; the task is inferred unless given.

    Rows without a target value are dropped with a warning giving their count.
    """
    if task not in (None, "classification", "regression"):
        raise DataError(f"unknown task {task!r}; use 'classification' or 'regression'")
    frame = _read_frame(Path(path))
    columns = ", ".join(map(str, frame.columns))
    if target is None:
        raise DataError(f"{path}: which column is the target? pass --target COLUMN (one of: {columns})")
    if target not in frame.columns:
        raise DataError(f"{path}: no column {target!r}; the columns are: {columns}")
    frame, n_dropped = _drop_missing_targets(frame, target, path)
    features = _feature_frame(frame.drop(columns=[target]), path, target)
    task = task or infer_task(frame[target])
    y, classes = _encode_target(frame[target], task, path)
    train, val, test = split_indices(y, task, split_seed=split_seed)

    numeric = [c for c in features.columns if _is_numeric(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    _check_finite(features[numeric], path, "feature column")
    with np.errstate(all="ignore"):  # overflow is detected below and named, not printed as a warning
        transformer = _column_transformer(numeric, categorical).fit(features.iloc[train])
        _check_statistics(transformer, features[numeric].iloc[train], path)
        X_train, X_val, X_test = (
            _transform(transformer, features.iloc[rows], numeric, path) for rows in (train, val, test)
        )
    preprocessing = {
        "kind": "columns",
        "target": target,
        "dropped_rows_missing_target": n_dropped,
        **_describe(transformer, numeric, categorical),
    }
    return Dataset(
        name=f"csv:{Path(path).name}",
        task=task,
        X_train=X_train,
        y_train=y[train],
        X_val=X_val,
        y_val=y[val],
        X_test=X_test,
        y_test=y[test],
        classes=classes,
        preprocessing=preprocessing,
        source=str(Path(path).resolve()),
    )


def infer_task(target: pd.Series) -> Task:
    """Classification for text/bool targets or integers with few distinct values; else regression."""
    if not _is_numeric(target):
        return "classification"
    values = target.to_numpy(dtype=np.float64)
    few_integers = np.all(values == np.round(values)) and len(np.unique(values)) <= MAX_INFERRED_CLASSES
    return "classification" if few_integers else "regression"


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"CSV file {str(path)!r} does not exist or is not a file; check the path")
    try:
        frame = pd.read_csv(path, low_memory=False)
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: the CSV file is empty") from error
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0]
        raise DataError(f"{path}: not a readable CSV file ({reason})") from error
    _check_unique_names(header, path)
    if frame.empty:
        raise DataError(f"{path}: the CSV file has a header but no data rows")
    return frame


def _check_unique_names(header: list[str], path: Path) -> None:
    """Refuse a header naming one column twice (pandas would silently rename the second ``NAME.1``)."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(f"{path}: column name {name[:80]!r} appears twice in the header (columns "
                            f"{seen[name]} and {number}); rename one so that every column has its own name")
        seen[name] = number


def _drop_missing_targets(frame: pd.DataFrame, target: str, path: Any) -> tuple[pd.DataFrame, int]:
    missing = frame[target].isna()
    n_missing = int(missing.sum())
    if n_missing == len(frame):
        raise DataError(f"{path}: target column {target!r} has no values")
    if n_missing:
        warnings.warn(f"{path}: dropped {n_missing} rows with no value in target {target!r}", stacklevel=3)
    return frame.loc[~missing], n_missing  # the index stays the data row's position, for error messages


def _feature_frame(features: pd.DataFrame, path: Any, target: str) -> pd.DataFrame:
    """Feature columns with entirely empty ones removed; categorical values as text, missing as NaN."""
    empty = [c for c in features.columns if features[c].isna().all()]
    if empty:
        warnings.warn(f"{path}: ignoring columns with no values: {', '.join(map(str, empty))}", stacklevel=3)
        features = features.drop(columns=empty)
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    for column in features.columns:
        if not _is_numeric(features[column]):
            # One type per column (str) so that mixed text/numbers/bools sort and encode consistently.
            text = features[column].astype(object).map(str, na_action="ignore")
            features[column] = text.where(text.notna(), np.nan)
    return features


def _encode_target(target: pd.Series, task: Task, path: Any) -> tuple[np.ndarray, list[str] | None]:
    """int64 class indices and class names, or float32 values for regression."""
    if _is_numeric(target):
        _check_finite(target.to_frame(), path, "target column")
    if task == "regression":
        if not _is_numeric(target):
            example = target.iloc[0]
            raise DataError(
                f"{path}: target column {target.name!r} is not numeric (e.g. {example!r}), so it cannot be "
                "a regression target; use --task classification"
            )
        _check_target_range(target, path)
        return target.to_numpy(dtype=np.float32), None
    values = target.to_numpy()
    if _is_numeric(target) and np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        values = values.astype(np.int64)  # class "3", not "3.0" (where exact: 1e300 stays a float)
    elif not _is_numeric(target):
        values = values.astype(str)
    labels, y = np.unique(values, return_inverse=True)
    if len(labels) < 2:
        raise DataError(
            f"{path}: target column {target.name!r} has a single class ({str(labels[0])[:80]!r}); "
            "a classifier needs at least two"
        )
    return y.astype(np.int64), [str(label) for label in labels]


def _where(path: Any, column: Any, position: Any) -> str:
    """``PATH: column 'NAME', row N`` for the data row at ``position`` (the frame's index)."""
    return f"{path}: column {str(column)[:80]!r}, row {spreadsheet_row(path, int(position))}"


def spreadsheet_row(path: Any, position: int) -> int:
    """The row a spreadsheet shows for data row ``position`` (0-based; pandas skips empty lines, a spreadsheet
    does not): the header is row 1. Read again only to name a row in an error."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
            data_rows = -1  # the header is the first record that is not empty
            for number, record in enumerate(csv.reader(file), start=1):
                if not record or (len(record) == 1 and record[0] and not record[0].strip()):
                    continue  # an empty line, as pandas reads it
                data_rows += 1
                if data_rows == position + 1:
                    return number
    except (OSError, csv.Error):  # a field beyond the csv module's size limit: count without empty lines
        pass
    return position + 2


def _check_finite(numbers: pd.DataFrame, path: Any, what: str) -> None:
    """Refuse an infinite value (``inf``, ``-inf``, or a number beyond float64 such as ``1e999``)."""
    for column in numbers.columns:
        infinite = np.isinf(numbers[column].to_numpy(dtype=np.float64))
        if infinite.any():
            row = numbers.index[np.argmax(infinite)]
            value = numbers[column].loc[row]
            raise DataError(f"{_where(path, column, row)}: infinite value {value} in {what}; replace it with a "
                            "finite number, or leave the cell empty to mark it missing")


def _check_target_range(target: pd.Series, path: Any) -> None:
    """Refuse a regression target beyond ``MAX_REGRESSION_TARGET``."""
    values = target.to_numpy(dtype=np.float64)
    too_large = np.abs(values) > MAX_REGRESSION_TARGET
    if too_large.any():
        row = target.index[np.argmax(too_large)]
        raise DataError(f"{_where(path, target.name, row)}: regression target {values[np.argmax(too_large)]:.3g} "
                        f"is beyond +-{MAX_REGRESSION_TARGET:.0e}, where float32 training overflows; rescale the "
                        "column (e.g. other units or its logarithm)")


def _check_statistics(transformer: Any, train: pd.DataFrame, path: Any) -> None:
    """Refuse a numeric column whose train mean or standard deviation overflows float64."""
    if train.shape[1] == 0:
        return
    _, scaler = transformer.named_transformers_["numeric"]
    for column, mean, scale in zip(train.columns, scaler.mean_, scaler.scale_, strict=True):
        if not (np.isfinite(mean) and np.isfinite(scale)):
            values = train[column].abs()
            raise DataError(f"{_where(path, column, values.idxmax())}: value {train[column][values.idxmax()]:.3g} "
                            "is too large to standardize; rescale the column (e.g. other units or its logarithm)")


def _transform(transformer: Any, rows: pd.DataFrame, numeric: list[str], path: Any) -> np.ndarray:
    """The rows standardized and encoded as float32; a value that leaves float32 once standardized is refused."""
    X = transformer.transform(rows).astype(np.float32)
    bad = ~np.isfinite(X[:, : len(numeric)])
    if bad.any():
        position, index = np.argwhere(bad)[0]
        column, row = numeric[index], rows.index[position]
        raise DataError(f"{_where(path, column, row)}: value {rows[column][row]:.3g} is too far from the train "
                        "rows' values to standardize in float32; rescale the column or drop that row")
    return X


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _column_transformer(numeric: list[str], categorical: list[str]) -> Any:
    # Imported here: scikit-learn takes about a second to import, and `import wattless` should not.
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # keep_empty_features: a column with values only outside the train split stays (imputed as 0), so the
    # output columns are the same whatever the split.
    return ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
                numeric,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ],
        sparse_threshold=0,
    )


def _describe(transformer: Any, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """JSON-serialisable statistics of the fitted transformer, column by column, in output order."""
    description: dict[str, Any] = {"numeric": [], "categorical": []}
    if numeric:
        imputer, scaler = transformer.named_transformers_["numeric"]
        for column, median, mean, std in zip(
            numeric, imputer.statistics_, scaler.mean_, scaler.scale_, strict=True
        ):
            description["numeric"].append(
                {"column": str(column), "median": float(median), "mean": float(mean), "std": float(std)}
            )
    if categorical:
        imputer, encoder = transformer.named_transformers_["categorical"]
        for column, most_frequent, categories in zip(
            categorical, imputer.statistics_, encoder.categories_, strict=True
        ):
            description["categorical"].append(
                {
                    "column": str(column),
                    "most_frequent": str(most_frequent),
                    "categories": [str(category) for category in categories],
                }
            )
    description["feature_names"] = [str(name) for name in transformer.get_feature_names_out()]
    return description
