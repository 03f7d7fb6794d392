"""The public surface of wattless.data and its registry; a contract every registered data set meets."""

from __future__ import annotations

import json

import numpy as np
import pytest

import wattless.data as data_module
from wattless.data import Dataset, _dataset, list_datasets, load_dataset, register_dataset
from wattless.errors import DataError

BUILT_INS = ["breast-cancer", "diabetes", "digits", "fashion-mnist", "mnist"]


def test_every_public_name_exists():
    assert sorted(data_module.__all__) == ["Dataset", "as_dataset", "list_datasets", "load_dataset", "register_dataset"]
    assert all(hasattr(data_module, name) for name in data_module.__all__)


def test_importing_the_package_registers_the_built_ins():
    assert set(BUILT_INS) <= set(list_datasets())
    assert list_datasets("*mnist") == ["fashion-mnist", "mnist"]


def test_unknown_name_lists_the_choices():
    with pytest.raises(DataError, match="unknown data set 'cifar-99'; choose one of: basic-motions, .*, ts:PATH"):
        load_dataset("cifar-99")


def test_target_and_task_apply_to_csv_only():
    with pytest.raises(DataError, match="csv:PATH data sets only"):
        load_dataset("digits", target="label")


def test_a_registered_loader_gets_data_dir_and_split_seed(monkeypatch):
    monkeypatch.setattr(_dataset, "_REGISTRY", dict(_dataset._REGISTRY))
    calls = []

    @register_dataset("toy")
    def load_toy(*, data_dir=None, split_seed=0):
        calls.append((data_dir, split_seed))
        return load_dataset("diabetes", split_seed=split_seed)

    assert "toy" in list_datasets()
    assert isinstance(load_dataset("toy", data_dir="/somewhere", split_seed=4), Dataset)
    assert calls == [("/somewhere", 4)]


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_data_set_meets_the_contract(name):
    try:
        data = load_dataset(name)
    except DataError as error:
        if "not found" not in str(error):
            raise
        pytest.skip(f"{name} files are not on this machine")
    target_dtype = np.int64 if data.task == "classification" else np.float32
    for split in ("train", "val", "test"):
        X, y = data.split(split)
        assert X.dtype == np.float32 and y.dtype == target_dtype and len(X) == len(y) > 0
        assert X.shape[1:] == data.input_shape and np.isfinite(X).all()
    if data.task == "classification":
        assert all(isinstance(c, str) for c in data.classes)
        assert 0 <= data.y_train.min() and data.y_train.max() < data.num_outputs
    description = json.loads(json.dumps(data.describe()))
    assert description["name"] == name and description["preprocessing"]["kind"]
