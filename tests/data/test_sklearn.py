"""The scikit-learn built-ins: digits, breast-cancer and diabetes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import datasets

from wattless.data import load_dataset

BUILT_INS = {
    "digits": (datasets.load_digits, 64, 1797, 10),
    "breast-cancer": (datasets.load_breast_cancer, 30, 569, 2),
    "diabetes": (lambda: datasets.load_diabetes(scaled=False), 10, 442, 1),
}


@pytest.mark.parametrize("name", BUILT_INS)
def test_shapes_sizes_and_dtypes(name):
    _, n_features, n_rows, n_outputs = BUILT_INS[name]
    data = load_dataset(name)
    sizes = data.describe()["sizes"]
    assert sum(sizes.values()) == n_rows
    assert sizes["test"] == round(0.2 * n_rows) and sizes["val"] == round(0.1 * n_rows)
    assert data.input_shape == (n_features,) and data.num_outputs == n_outputs
    assert data.X_train.dtype == data.X_val.dtype == data.X_test.dtype == np.float32
    json.dumps(data.describe())


@pytest.mark.parametrize("name", BUILT_INS)
def test_same_seed_same_arrays_other_seed_other_arrays(name):
    first, again, other = (load_dataset(name, split_seed=seed) for seed in (0, 0, 1))
    for split in ("train", "val", "test"):
        for a, b in zip(first.split(split), again.split(split), strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.X_test, other.X_test)


@pytest.mark.parametrize("name", BUILT_INS)
def test_features_standardized_with_train_statistics_only(name):
    fetch = BUILT_INS[name][0]
    data = load_dataset(name)
    varying = data.X_train.std(axis=0) > 0
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=0)[varying], 1, atol=1e-4)
    mean, std = (np.array(data.preprocessing[key]) for key in ("mean", "std"))
    raw = fetch().data
    for X in (data.X_val, data.X_test):  # val/test map back to raw rows through the train statistics
        for row in X.astype(np.float64) * std + mean:
            gap_in_stds = (np.abs(raw - row) / std).max(axis=1)
            assert gap_in_stds.min() < 1e-4
    assert not np.allclose(mean, fetch().data.mean(axis=0))  # the statistics are not those of all rows


def test_classification_targets_are_stratified_class_indices():
    data = load_dataset("digits")
    assert data.classes == [str(digit) for digit in range(10)]
    assert data.y_train.dtype == np.int64
    shares = [np.bincount(y, minlength=10) / len(y) for y in (data.y_train, data.y_val, data.y_test)]
    np.testing.assert_allclose(shares[1], shares[0], atol=0.02)
    np.testing.assert_allclose(shares[2], shares[0], atol=0.01)
    assert load_dataset("breast-cancer").classes == ["malignant", "benign"]


def test_diabetes_target_keeps_its_original_units():
    data = load_dataset("diabetes")
    assert data.task == "regression" and data.classes is None and data.y_train.dtype == np.float32
    all_targets = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert all_targets.min() == 25 and all_targets.max() == 346
