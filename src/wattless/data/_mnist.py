"""MNIST and Fashion-MNIST from their four original IDX gzip files: 60,000 train and 10,000 test images.

The official test set is the test split; the validation split is a seeded, stratified 10% of the
official train set (6,000 images). Pixels are scaled to [0, 1], then standardized with the mean and
std of the train split (one scalar each), giving float32 samples of shape ``(1, 28, 28)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ._dataset import Dataset, register_dataset
from ._idx import read_idx
from ._locate import locate_files
from ._split import VAL_FRACTION, holdout_indices

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

BASE_URLS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    # yann.lecun.com/exdb/mnist now asks for a login; this is the mirror torchvision downloads from.
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
SHA256 = {
    # Published by Zalando Research (github.com/zalandoresearch/fashion-mnist).
    "fashion-mnist": {
        TRAIN_IMAGES: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        TRAIN_LABELS: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        TEST_IMAGES: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        TEST_LABELS: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
    # The sums torchvision and many other loaders verify the original MNIST files against.
    "mnist": {
        TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}
CLASSES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "mnist": [str(digit) for digit in range(10)],
}
PIXEL_SCALE = 1 / 255
"""Multiplier from uint8 pixel values to [0, 1]."""


@register_dataset("fashion-mnist")
def load_fashion_mnist(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """Zalando's Fashion-MNIST: 28x28 grey images of 10 kinds of clothing."""
    return load_idx_dataset("fashion-mnist", data_dir=data_dir, split_seed=split_seed)


@register_dataset("mnist")
def load_mnist(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """LeCun's MNIST: 28x28 grey images of handwritten digits 0 to 9."""
    return load_idx_dataset("mnist", data_dir=data_dir, split_seed=split_seed)


def load_idx_dataset(name: str, *, data_dir: str | None, split_seed: int) -> Dataset:
    """Locate, verify and parse the four IDX files of ``name``, then split and standardize."""
    folder = locate_files(name, IDX_FILES, data_dir=data_dir, sha256=SHA256[name], base_url=BASE_URLS[name])
    classes = CLASSES[name]
    train_images, train_labels = _read_pair(folder / TRAIN_IMAGES, folder / TRAIN_LABELS, len(classes))
    test_images, test_labels = _read_pair(folder / TEST_IMAGES, folder / TEST_LABELS, len(classes))
    if test_images.shape[1:] != train_images.shape[1:]:
        raise DataError(
            f"{folder / TEST_IMAGES}: images are {test_images.shape[1:]} pixels but the train images are "
            f"{train_images.shape[1:]}; the files come from different data sets"
        )
    n_val = round(VAL_FRACTION * len(train_labels))
    train, val = holdout_indices(train_labels, n_val, "classification", split_seed=split_seed)
    train_pixels = train_images[train]
    mean, std = _pixel_mean_std(train_pixels)
    return Dataset(
        name=name,
        task="classification",
        X_train=_standardize(train_pixels, mean, std),
        y_train=train_labels[train],
        X_val=_standardize(train_images[val], mean, std),
        y_val=train_labels[val],
        X_test=_standardize(test_images, mean, std),
        y_test=test_labels,
        classes=list(classes),
        preprocessing={"kind": "standardize", "pixel_scale": PIXEL_SCALE, "mean": mean, "std": std},
        source=str(folder),
    )


def _read_pair(images_path: Path, labels_path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(n, rows, cols)`` and int64 labels ``(n,)``, checked to match each other."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: holds {len(labels)} labels but {images_path.name} holds {len(images)} images; "
            "the files do not belong together"
        )
    if labels.max() >= n_classes:
        raise DataError(f"{labels_path}: label {labels.max()} is out of range 0..{n_classes - 1}")
    return images, labels


def _pixel_mean_std(pixels: np.ndarray) -> tuple[float, float]:
    """Mean and std of uint8 pixels after scaling to [0, 1], exact, from a 256-bin histogram."""
    counts = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) * PIXEL_SCALE
    mean = float(counts @ values / counts.sum())
    std = float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
    return mean, std if std > 0 else 1.0  # a blank train set keeps scale 1


def _standardize(pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    """float32 ``(n, 1, rows, cols)`` of ``(pixel * PIXEL_SCALE - mean) / std``, with no float64 copy."""
    X = pixels.astype(np.float32)
    X *= np.float32(PIXEL_SCALE)
    X -= np.float32(mean)
    X /= np.float32(std)
    return X.reshape(len(pixels), 1, *pixels.shape[1:])
