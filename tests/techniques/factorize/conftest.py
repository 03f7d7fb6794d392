"""Conv fixtures for factorization: digits as 16x16 images, and a LeNet-5 trained on them briefly."""

import numpy as np
import pytest

import wattless
from wattless.data import Dataset


def as_images(X):
    """8x8 digit features -> (n, 1, 16, 16) images (each pixel repeated 2x2)."""
    return np.kron(X.reshape(-1, 1, 8, 8), np.ones((2, 2), np.float32)).astype(np.float32)


@pytest.fixture(scope="session")
def digit_images(digits):
    return Dataset("digit-images", "classification", as_images(digits.X_train), digits.y_train,
                   as_images(digits.X_val), digits.y_val, as_images(digits.X_test), digits.y_test,
                   classes=digits.classes)


@pytest.fixture(scope="session")
def lenet5(digit_images):
    return wattless.train("lenet5", digit_images, epochs=2, lr=3e-3, seed=0)
