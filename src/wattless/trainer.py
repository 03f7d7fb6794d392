"""Train a model for a data set: its architecture spec sized for the data, a memory check, seeded initial weights,
the one training loop, and the metadata that makes the result a reproducible :class:`~wattless.io.WattlessModel`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from .data import Dataset, as_dataset
from .errors import ModelError
from .io import WattlessModel
from .models import build_model, check_input_shape, spec_for
from .train import TrainConfig, check_targets, fit, seed_everything


def base_meta(data: Dataset, spec: dict[str, Any], seed: int) -> dict[str, Any]:
    """The metadata of a model of ``spec`` for ``data``, before any technique ran."""
    return {"model": spec, "task": data.task, "dataset": data.describe(), "seed": seed, "recipe": []}


def check_trainable_size(spec: dict[str, Any], *, trust_code: bool = False) -> None:
    """Refuse, before allocating anything, a model whose training state cannot fit in this machine's memory.

    Training with Adam holds four fp32 copies of every parameter (weights, gradients, two moments).
    """
    with torch.device("meta"):
        params = sum(p.numel() for p in build_model(spec, trust_code=trust_code).parameters())
    needed = params * 4 * 4
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise ModelError(f"model {spec['name']!r} with options {spec.get('kwargs')} has {params:,} parameters: "
                         f"training needs about {needed / 2**30:.0f} GiB but this machine has "
                         f"{available / 2**30:.0f} GiB; choose smaller layers")


def train_model(model: str, dataset: Dataset | str, *, model_kwargs: dict[str, Any] | None = None,
                config: TrainConfig | None = None, trust_code: bool = False,
                on_epoch: Callable[[int, dict], None] | None = None, **train_options: Any) -> WattlessModel:
    """Build zoo model ``model`` (or ``package.module:factory``) for ``dataset`` and train it."""
    data = as_dataset(dataset)
    config = config or TrainConfig(**train_options)
    check_targets(data)  # before spec_for takes the targets' mean and std
    spec = spec_for(model, data, model_kwargs)
    check_trainable_size(spec, trust_code=trust_code)
    seed_everything(config.seed)  # the initial weights come from the seed too
    module = build_model(spec, trust_code=trust_code)
    check_input_shape(module, data.input_shape)
    summary = fit(module, data, config, on_epoch=on_epoch)
    meta = base_meta(data, spec, config.seed)
    meta["train"] = {"config": config.model_dump(mode="json"), "epochs_run": summary["epochs_run"],
                     "best_epoch": summary["best_epoch"], "val": summary["val"]}
    return WattlessModel(module, meta)
