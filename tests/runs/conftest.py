"""Tiny studies written to YAML, and the ``wattless`` CLI run in-process."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from wattless.testing import assert_user_error, run_cli

TINY: dict[str, Any] = {
    "name": "tiny",
    "models": [{"name": "mlp", "kwargs": {"hidden": [16]}}],
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 1, "lr": 0.01},
    "recipes": [{"name": "ptq4", "steps": [{"quantize.ptq": {"bits": 4}}]},
                {"name": "prune50", "steps": [{"prune.magnitude": {"sparsity": 0.5}}]}],
    "measure": {"batches": [1], "repeats": 2, "engines": ["torch"]},
}
"""Three trials (baseline, ptq4, prune50) of a 64-16-10 MLP trained for one epoch: about a second of work."""


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of ``TINY``."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_study(tmp_path):
    """Write ``TINY`` with top-level keys replaced by ``changes`` to ``tmp_path/<name>.yaml``."""

    def write(name: str = "study", **changes: Any) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def wattless_cli():
    return run_cli


@pytest.fixture(scope="session")
def expect_user_error():
    return assert_user_error
