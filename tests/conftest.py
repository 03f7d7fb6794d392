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


@pytest.fixture(autouse=True)
def no_energy_meter(monkeypatch):
    """Energy is estimated in every test unless a test installs a meter itself: what a test asserts about energy
    must not depend on whether the host exposes RAPL counters."""
    monkeypatch.setenv("WATTLESS_ENERGY_METER", "none")
