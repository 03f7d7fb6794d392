"""The shared seeded split and the train-only standardization."""

from __future__ import annotations

import numpy as np
import pytest

from wattless.data._split import split_indices, split_train_val_test, standardize_columns
from wattless.errors import DataError


def test_sizes_are_shares_of_all_rows_and_the_parts_partition_them():
    y = np.arange(1000) % 4
    train, val, test = split_indices(y, "classification", split_seed=0)
    assert (len(train), len(val), len(test)) == (700, 100, 200)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(1000))


def test_classification_is_stratified():
    y = np.array([0] * 800 + [1] * 200)
    train, val, test = split_indices(y, "classification", split_seed=3)
    assert [y[part].mean() for part in (train, val, test)] == pytest.approx([0.2, 0.2, 0.2])


def test_same_seed_same_arrays_other_seed_other_arrays():
    X = np.random.default_rng(0).normal(size=(100, 3))
    y = X[:, 0] * 2.0
    first, again = (split_train_val_test(X, y, "regression", split_seed=7) for _ in range(2))
    other = split_train_val_test(X, y, "regression", split_seed=8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[4], other[4])
    np.testing.assert_array_equal(first[0][:, 0] * 2.0, first[1])  # rows stay paired with their targets


def test_a_class_too_small_to_stratify_falls_back_with_a_warning():
    y = np.array([0] * 30 + [1])
    with pytest.warns(UserWarning, match="stratified split impossible.*plain random split"):
        train, val, test = split_indices(y, "classification", split_seed=0)
    assert len(train) + len(val) + len(test) == 31


def test_too_few_rows_is_a_data_error():
    with pytest.raises(DataError, match="2 rows are too few"):
        split_indices(np.array([0.0, 1.0]), "regression", split_seed=0)


def test_standardize_uses_train_statistics_and_survives_constant_columns():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    val = np.array([[5.0, 6.0]])
    (train_out, val_out), mean, std = standardize_columns(train, val)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]  # a constant column keeps scale 1
    assert train_out.tolist() == [[-1.0, 0.0], [1.0, 0.0]] and val_out.tolist() == [[3.0, 1.0]]
    assert train_out.dtype == val_out.dtype == np.float32
