"""Small data sets that ship inside scikit-learn: no files, no network, the default for demos and tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._dataset import Dataset, register_dataset
from ._split import Task, split_train_val_test, standardize_columns


def _from_bunch(name: str, fetch_name: str, task: Task, bunch: Any, split_seed: int) -> Dataset:
    """Split seeded, then standardize the feature columns with train statistics only.

    Regression targets stay in their original units so that RMSE and MAE mean something.
    """
    y = np.asarray(bunch.target, dtype=np.int64 if task == "classification" else np.float32)
    X_train, y_train, X_val, y_val, X_test, y_test = split_train_val_test(
        bunch.data, y, task, split_seed=split_seed
    )
    (X_train, X_val, X_test), mean, std = standardize_columns(X_train, X_val, X_test)
    return Dataset(
        name=name,
        task=task,
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        X_test=X_test,
        y_test=y_test,
        classes=[str(c) for c in bunch.target_names] if task == "classification" else None,
        preprocessing={"kind": "standardize", "mean": mean.tolist(), "std": std.tolist()},
        source=f"scikit-learn ({fetch_name})",
    )


@register_dataset("digits")
def load_digits(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """8x8 handwritten digits (1,797 images, 64 pixels valued 0..16, 10 classes); ``data_dir`` is unused."""
    from sklearn.datasets import load_digits as fetch

    return _from_bunch("digits", "load_digits", "classification", fetch(), split_seed)


@register_dataset("breast-cancer")
def load_breast_cancer(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """Wisconsin breast cancer (569 tumours, 30 features, malignant/benign); ``data_dir`` is unused."""
    from sklearn.datasets import load_breast_cancer as fetch

    return _from_bunch("breast-cancer", "load_breast_cancer", "classification", fetch(), split_seed)


@register_dataset("diabetes")
def load_diabetes(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """Diabetes progression after one year (442 patients, 10 raw features); ``data_dir`` is unused.

    The target is the disease-progression score in its original units (about 25 to 346).
    """
    from sklearn.datasets import load_diabetes as fetch

    return _from_bunch("diabetes", "load_diabetes", "regression", fetch(scaled=False), split_seed)
