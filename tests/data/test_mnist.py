"""MNIST and Fashion-MNIST loaders on small synthetic IDX files; the real Fashion-MNIST under -m slow."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from wattless.data import _mnist, load_dataset
from wattless.errors import DataError

IMAGE_SHAPE = (1, 28, 28)


@pytest.fixture
def fake_set(isolated_lookup, trust_fake_files, write_idx_dataset):
    folder = isolated_lookup / "arg"
    return folder, write_idx_dataset(folder)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_shapes_splits_and_dtypes(fake_set, name):
    folder, arrays = fake_set
    data = load_dataset(name, data_dir=str(folder))
    assert data.X_train.shape == (180, *IMAGE_SHAPE) and data.X_val.shape == (20, *IMAGE_SHAPE)
    assert data.X_test.shape == (50, *IMAGE_SHAPE) and data.X_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and len(data.classes) == 10 == data.num_outputs
    np.testing.assert_array_equal(data.y_test, arrays[_mnist.TEST_LABELS])  # the official test set, in order
    assert np.bincount(data.y_val).tolist() == [2] * 10  # stratified 10% of the official train set
    json.dumps(data.describe())


def test_statistics_come_from_the_train_split_only(fake_set):
    folder, arrays = fake_set
    data = load_dataset("fashion-mnist", data_dir=str(folder))
    assert abs(data.X_train.mean()) < 1e-4 and abs(data.X_train.std() - 1) < 1e-4
    prep = data.preprocessing
    assert prep["kind"] == "standardize" and prep["pixel_scale"] == 1 / 255
    pixels = (data.X_test * prep["std"] + prep["mean"]) / prep["pixel_scale"]
    np.testing.assert_allclose(pixels[:, 0], arrays[_mnist.TEST_IMAGES], atol=1e-3)
    all_train = arrays[_mnist.TRAIN_IMAGES] / 255
    assert prep["mean"] != pytest.approx(all_train.mean(), abs=1e-9)  # not the mean of train + val


def test_same_seed_same_split_other_seed_other_split(fake_set):
    folder, _ = fake_set
    first, again = (load_dataset("mnist", data_dir=str(folder), split_seed=0) for _ in range(2))
    other = load_dataset("mnist", data_dir=str(folder), split_seed=1)
    np.testing.assert_array_equal(first.X_val, again.X_val)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.X_val, other.X_val)
    np.testing.assert_array_equal(first.y_test, other.y_test)  # the test set does not depend on the seed


def test_image_and_label_counts_must_match(fake_set, write_idx):
    folder, arrays = fake_set
    write_idx(folder / _mnist.TRAIN_LABELS, arrays[_mnist.TRAIN_LABELS][:-1])
    with pytest.raises(DataError, match=f"{_mnist.TRAIN_LABELS}.*199 labels.*200 images"):
        load_dataset("mnist", data_dir=str(folder))


def test_labels_must_be_class_indices(fake_set, write_idx):
    folder, arrays = fake_set
    write_idx(folder / _mnist.TEST_LABELS, np.full(50, 10, np.uint8))
    with pytest.raises(DataError, match=f"{_mnist.TEST_LABELS}.*label 10 is out of range 0..9"):
        load_dataset("mnist", data_dir=str(folder))


def test_train_and_test_images_must_have_one_size(fake_set, write_idx):
    folder, _ = fake_set
    write_idx(folder / _mnist.TEST_IMAGES, np.zeros((50, 32, 32), np.uint8))
    with pytest.raises(DataError, match="different data sets"):
        load_dataset("mnist", data_dir=str(folder))


def test_fake_files_fail_the_published_fashion_mnist_checksums(isolated_lookup, write_idx_dataset):
    folder = isolated_lookup / "arg"
    write_idx_dataset(folder)
    with pytest.raises(DataError, match="sha256") as error:
        load_dataset("fashion-mnist", data_dir=str(folder))
    assert _mnist.SHA256["fashion-mnist"][_mnist.TRAIN_IMAGES] in str(error.value)


def test_missing_files_error_names_the_set_and_what_to_do(isolated_lookup):
    with pytest.raises(DataError, match="'fashion-mnist' not found.*WATTLESS_DATA.*--data-dir") as error:
        load_dataset("fashion-mnist")
    assert all(file in str(error.value) for file in _mnist.IDX_FILES)
    assert str(isolated_lookup / "cache" / "fashion-mnist") in str(error.value)


@pytest.mark.slow
def test_real_fashion_mnist_from_wattless_data():
    if not os.environ.get("WATTLESS_DATA"):
        pytest.skip("WATTLESS_DATA is not set")
    data = load_dataset("fashion-mnist")
    assert [len(data.y_train), len(data.y_val), len(data.y_test)] == [54000, 6000, 10000]
    assert data.input_shape == IMAGE_SHAPE
    assert np.bincount(data.y_val).tolist() == [600] * 10
    assert abs(float(data.X_train.mean())) < 1e-3 and abs(float(data.X_train.std()) - 1) < 1e-3
