"""Seeded train/validation/test splits and train-only standardization, shared by every loader."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from ..errors import DataError

Task = Literal["classification", "regression"]

TEST_FRACTION = 0.2
"""Share of all rows held out for the test split."""
VAL_FRACTION = 0.1
"""Share of all rows held out for the validation split."""


def holdout_indices(
    y: np.ndarray, n_holdout: int, task: Task, *, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled ``(kept, held_out)`` row indices with ``n_holdout`` rows held out.

    Classification targets are split stratified, so every class keeps its share in both parts.
    """
    # Imported here: scikit-learn takes about a second to import, and `import wattless` should not.
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    if task == "classification":
        try:
            kept, held_out = train_test_split(rows, test_size=n_holdout, random_state=split_seed, stratify=y)
            return kept, held_out
        except ValueError as error:
            warnings.warn(f"stratified split impossible ({error}); using a plain random split", stacklevel=3)
    kept, held_out = train_test_split(rows, test_size=n_holdout, random_state=split_seed)
    return kept, held_out


def split_indices(
    y: np.ndarray,
    task: Task,
    *,
    split_seed: int,
    test_fraction: float = TEST_FRACTION,
    val_fraction: float = VAL_FRACTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)`` row indices; the fractions are shares of all rows (at least one row each)."""
    if not (0 < test_fraction and 0 < val_fraction and test_fraction + val_fraction < 1):
        raise ValueError(f"need positive fractions summing to < 1, got {test_fraction}, {val_fraction}")
    n_rows = len(y)
    n_test = max(1, round(test_fraction * n_rows))
    n_val = max(1, round(val_fraction * n_rows))
    if n_rows - n_test - n_val < 1:
        raise DataError(f"{n_rows} rows are too few for train, validation and test splits; need at least 3")
    rest, test = holdout_indices(y, n_test, task, split_seed=split_seed)
    train, val = holdout_indices(y[rest], n_val, task, split_seed=split_seed)
    return rest[train], rest[val], test


def split_train_val_test(
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    *,
    split_seed: int,
    test_fraction: float = TEST_FRACTION,
    val_fraction: float = VAL_FRACTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_val, y_val, X_test, y_test)``, seeded and stratified for classification."""
    train, val, test = split_indices(
        y, task, split_seed=split_seed, test_fraction=test_fraction, val_fraction=val_fraction
    )
    return X[train], y[train], X[val], y[val], X[test], y[test]


def standardize_columns(
    X_train: np.ndarray, *others: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Standardize each column with the mean and std of ``X_train`` only; returns float32 arrays.

    A column that is constant in train keeps scale 1 (as scikit-learn's ``StandardScaler``), so a value
    that differs from it in val/test stays finite. Returns ``([X_train, *others], mean, std)``.
    """
    train64 = np.asarray(X_train, dtype=np.float64)
    mean = train64.mean(axis=0)
    std = train64.std(axis=0)
    std = np.where(std < 1e-12, 1.0, std)
    scaled = [((np.asarray(X, dtype=np.float64) - mean) / std).astype(np.float32) for X in (X_train, *others)]
    return scaled, mean, std
