"""Data from Python: numpy arrays, torch data sets and npz files become the same seeded, stratified splits as the
built-in sets; bad arrays are one clear error each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import wattless
from wattless.data import Dataset
from wattless.errors import DataError


def arrays(n=200, classes=4, features=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, size=n)


def test_arrays_split_seeded_and_stratified_with_a_given_test_split():
    X, y = arrays()
    X_test, y_test = arrays(40, seed=1)
    data = Dataset.from_arrays(X, y, test=(X_test, y_test), val_fraction=0.25, split_seed=3)
    assert data.task == "classification" and data.classes == ["0", "1", "2", "3"]
    assert np.array_equal(data.X_test, X_test) and len(data.y_val) == 50 and len(data.y_train) == 150
    assert sorted(np.concatenate([data.y_train, data.y_val]).tolist()) == sorted(y.tolist())
    again = Dataset.from_arrays(X, y, test=(X_test, y_test), val_fraction=0.25, split_seed=3)
    assert np.array_equal(data.X_val, again.X_val)  # same seed, same split
    assert data.name == "memory:arrays" and data.preprocessing["kind"] == "none"


def test_standardize_uses_train_statistics_only():
    X, y = arrays()
    data = Dataset.from_arrays(X * 5 + 3, y, standardize=True)
    assert np.allclose(data.X_train.mean(axis=0), 0, atol=1e-5) and np.allclose(data.X_train.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(data.X_test.mean(axis=0), 0, atol=1e-5)


def test_float_targets_are_regression_and_whole_numbers_classes():
    X, _ = arrays()
    assert Dataset.from_arrays(X, np.linspace(0, 1, 200)).task == "regression"
    assert Dataset.from_arrays(X, np.arange(200) % 3 * 1.0).task == "classification"


@pytest.mark.parametrize("make, message", [
    (lambda X, y: (X, y[:-1]), "X has 200 samples but y has 199"),
    (lambda X, y: (np.where(np.arange(6) == 2, np.nan, X), y), r"NaN or infinite values \(the first in sample 0\)"),
    (lambda X, y: (X, y + 3), r"0..k-1, found 4 labels \(3->0, 4->1, 5->2, 6->3\).*numpy.unique"),
    (lambda X, y: (X, np.array(["cat", "dog"] * 100)), r"found 2 labels \(cat->0, dog->1\)"),
    (lambda X, y: (X[:, 0], y), "needs a batch dimension"),
    (lambda X, y: (X, y.reshape(20, 10)), r"one label or value per sample"),
])
def test_bad_arrays_are_one_clear_error(make, message):
    with pytest.raises(DataError, match=message):
        Dataset.from_arrays(*make(*arrays()))


def test_a_torch_dataset_or_loader_is_materialised_after_a_memory_check():
    X, y = arrays()
    pairs = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    data = Dataset.from_torch(pairs, batch_size=32, split_seed=0)
    assert sorted(np.concatenate([data.y_train, data.y_val, data.y_test]).tolist()) == sorted(y.tolist())
    assert data.input_shape == (6,) and data.source == "torch TensorDataset"
    from_loader = Dataset.from_torch(DataLoader(pairs, batch_size=50))
    assert np.array_equal(from_loader.X_test, data.X_test)
    with pytest.raises(DataError, match="needs about .* GiB in memory"):
        Dataset.from_torch(pairs, max_bytes=1000)


def test_npz_files_load_by_name_without_pickles(tmp_path):
    X, y = arrays()
    np.savez(tmp_path / "d.npz", X_train=X, y_train=y, X_test=X[:20], y_test=y[:20])
    data = wattless.load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.name == f"npz:{tmp_path / 'd.npz'}" and len(data.y_test) == 20
    np.savez(tmp_path / "objects.npz", X=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="not a readable .npz"):
        wattless.load_dataset(f"npz:{tmp_path / 'objects.npz'}")
    np.savez(tmp_path / "other.npz", features=X)
    with pytest.raises(DataError, match="needs arrays X_train and y_train.*holds features"):
        wattless.load_dataset(f"npz:{tmp_path / 'other.npz'}")


def test_a_data_set_from_memory_cannot_be_loaded_by_name():
    with pytest.raises(DataError, match="built in memory.*pass the Dataset"):
        wattless.load_dataset("memory:arrays")
