"""Shared pieces for the .wlz tests: a small model-like set of tensors, and a way to forge files."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wattless.artifact import write_artifact

Stored = tuple[dict[str, torch.Tensor], dict[str, str]]


def _sample_tensors() -> dict[str, torch.Tensor]:
    """A tiny model: each encoding the writer picks by itself, and bool masks and int codes.

    Sparse with gap indices for a 90%-zero weight and its mask, sparse with a bitmap for a half-zero
    weight, zstd for a constant norm weight, raw for dense floats.
    """
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(16, 24, generator=generator)
    weight[torch.rand(16, 24, generator=generator) < 0.9] = 0
    half_zero = torch.randn(16, 16, generator=generator)
    half_zero[torch.rand(16, 16, generator=generator) < 0.5] = 0
    return {
        "fc.weight": weight,
        "fc.bias": torch.randn(16, generator=generator),
        "fc.mask": weight != 0,
        "out.weight": half_zero,
        "norm.weight": torch.ones(16),
        "head.active": torch.tensor([True, False, True, True]),
        "codes": torch.randint(-8, 8, (40,), dtype=torch.int8, generator=generator),
        "step": torch.tensor(7),
    }


def _read_stored(path: Path) -> Stored:
    """The stored tensors and the str->str metadata of a safetensors file, as plain safetensors sees them."""
    with safe_open(path, framework="pt") as file:
        return {name: file.get_tensor(name) for name in file.keys()}, file.metadata()


def _forge(path: Path, stored: dict[str, torch.Tensor], file_metadata: dict[str, str]) -> Path:
    """Write a safetensors file with exactly these stored tensors and metadata, bypassing our writer."""
    save_file(stored, path, metadata=file_metadata)
    return path


@pytest.fixture
def sample_tensors() -> dict[str, torch.Tensor]:
    return _sample_tensors()


@pytest.fixture(scope="session")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .wlz file of the sample tensors, holding raw, zstd and sparse tensors; do not modify it."""
    path = tmp_path_factory.mktemp("valid") / "model.wlz"
    write_artifact(path, _sample_tensors(), {"model": "tiny", "classes": ["a", "b"], "lr": 0.1})
    return path


@pytest.fixture(scope="session")
def read_stored() -> Callable[[Path], Stored]:
    return _read_stored


@pytest.fixture(scope="session")
def forge() -> Callable[[Path, dict[str, torch.Tensor], dict[str, str]], Path]:
    return _forge
