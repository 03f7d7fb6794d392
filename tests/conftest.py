"""Shared fixtures: small built-in data and a quickly trained model, made once per session."""

import pytest

import wattless


@pytest.fixture(scope="session")
def digits():
    return wattless.load_dataset("digits")


@pytest.fixture(scope="session")
def trained_mlp(digits):
    """A small MLP trained for a few epochs on digits (under a second)."""
    return wattless.train("mlp", digits, model_kwargs={"hidden": [32]}, epochs=8, lr=1e-2, seed=0)
