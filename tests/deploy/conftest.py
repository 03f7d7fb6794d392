"""Small seeded models for the export tests, and one trained 784-300-100-10 MLP exported once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from wattless.deploy import export_onnx

N_FEATURES, N_CLASSES = 784, 10


class WeightMask(nn.Module):
    """A pruning-style parametrization: the effective weight is ``original * mask``."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def make_mlp(sizes: tuple[int, ...] = (20, 32, 5)) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def make_conv_net() -> nn.Sequential:
    """Input (1, 12, 12) -> 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)
    )


def make_masked_mlp() -> nn.Sequential:
    """The small MLP with half of its first layer's weights masked to zero by a parametrization."""
    model = make_mlp()
    mask = (torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    parametrize.register_parametrization(model[0], "weight", WeightMask(mask))
    return model


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (make_mlp, (20,)),
    "conv": (make_conv_net, (1, 12, 12)),
    "masked_mlp": (make_masked_mlp, (20,)),
}
"""Name -> (factory, per-sample input shape)."""


@pytest.fixture(params=sorted(MODELS))
def model_and_shape(request) -> tuple[nn.Module, tuple[int, ...]]:
    factory, shape = MODELS[request.param]
    torch.manual_seed(0)
    return factory(), shape


@pytest.fixture
def small_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return make_mlp()


@pytest.fixture
def masked_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return make_masked_mlp()


def _well_separated_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around 10 far-apart centres in 784 dimensions (float32 X, int64 y)."""
    centres = np.random.default_rng(0).normal(0.0, 1.0, (N_CLASSES, N_FEATURES))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    X = centres[y] + rng.normal(0.0, 1.0, (n, N_FEATURES))
    return X.astype(np.float32), y


@pytest.fixture(scope="session")
def blobs() -> dict[str, np.ndarray]:
    X_train, y_train = _well_separated_classes(1000, seed=1)
    X_test, y_test = _well_separated_classes(500, seed=2)
    return {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test}


@pytest.fixture(scope="session")
def trained_mlp(blobs) -> nn.Sequential:
    """784-300-100-10 MLP fitted to the blobs (full-batch Adam, a fraction of a second)."""
    torch.manual_seed(0)
    model = make_mlp((N_FEATURES, 300, 100, N_CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X, y = torch.from_numpy(blobs["X_train"]), torch.from_numpy(blobs["y_train"])
    for _ in range(30):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def mlp_fp32_path(trained_mlp, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fp32") / "mlp.onnx"
    return export_onnx(trained_mlp, (N_FEATURES,), path, metadata={"dataset": "blobs"})
