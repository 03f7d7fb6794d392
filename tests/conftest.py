"""Shared fixtures: small built-in data and a quickly trained model, made once per session."""

import dataclasses

import pytest

import wattless


@pytest.fixture(scope="session")
def digits():
    return wattless.load_dataset("digits")


@pytest.fixture(scope="session")
def digit_images(digits):
    """The digits as 1x8x8 images, for convolutional models and image augmentations."""
    return dataclasses.replace(digits, **{f"X_{s}": getattr(digits, f"X_{s}").reshape(-1, 1, 8, 8)
                                          for s in ("train", "val", "test")})


@pytest.fixture(scope="session")
def trained_mlp(digits):
    """A small MLP trained for a few epochs on digits (under a second)."""
    return wattless.train("mlp", digits, model_kwargs={"hidden": [32]}, epochs=8, lr=1e-2, seed=0)


@pytest.fixture(autouse=True)
def no_energy_meter(monkeypatch):
    """Energy is estimated in every test unless a test installs a meter itself: what a test asserts about energy
    must not depend on whether the host exposes RAPL counters."""
    monkeypatch.setenv("WATTLESS_ENERGY_METER", "none")
