"""Teachers for distillation: an MLP and LeNet-300-100 trained on digits, a LeNet-5 on digits as 16x16 images."""

import numpy as np
import pytest

import wattless
from wattless.data import Dataset


@pytest.fixture(scope="session")
def teacher(digits):
    """MLP 64-128-10 trained to about 96% test accuracy (about a second)."""
    return wattless.train("mlp", digits, model_kwargs={"hidden": [128]}, epochs=20, lr=1e-2, seed=0)


@pytest.fixture(scope="session")
def lenet300_teacher(digits):
    return wattless.train("lenet300", digits, epochs=3, lr=1e-2, seed=0)


@pytest.fixture(scope="session")
def digit_images(digits):
    """8x8 digits as (n, 1, 16, 16) images, each pixel repeated 2x2."""
    def images(X):
        return np.kron(X.reshape(-1, 1, 8, 8), np.ones((2, 2), np.float32)).astype(np.float32)

    return Dataset("digit-images", "classification", images(digits.X_train), digits.y_train, images(digits.X_val),
                   digits.y_val, images(digits.X_test), digits.y_test, classes=digits.classes)


@pytest.fixture(scope="session")
def lenet5_teacher(digit_images):
    return wattless.train("lenet5", digit_images, epochs=2, lr=3e-3, seed=0)
