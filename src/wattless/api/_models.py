"""Models: train one, import plain weights, and apply technique steps in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..data import Dataset, as_dataset
from ..errors import ConfigError, ModelError
from ..io import WattlessModel, load
from ..io import import_weights as wrap_weights
from ..models import spec_for
from ..models._registry import IN_MEMORY, not_rebuildable
from ..pipeline import Step, run_steps
from ..techniques import get_technique, parse_step
from ..train import TrainConfig
from ..trainer import base_meta, train_model
from ..wrap import wrap
from ._common import check_output, dataset_for

model_spec = spec_for
"""The architecture spec of a zoo model sized for a data set (kept under its former name)."""


def train(model: str, dataset: Dataset | str, *, model_kwargs: dict[str, Any] | None = None,
          config: TrainConfig | None = None, trust_code: bool = False,
          on_epoch: Callable[[int, dict], None] | None = None, **train_options) -> WattlessModel:
    """Build zoo model ``model`` (or ``package.module:factory``) for ``dataset`` and train it.

    Example:
        >>> m = train("mlp", "digits", epochs=1, seed=0)  # doctest: +SKIP
    """
    return train_model(model, dataset, model_kwargs=model_kwargs, config=config, trust_code=trust_code,
                       on_epoch=on_epoch, **train_options)


def import_weights(path: str | Path, model: str, dataset: Dataset | str, *,
                   model_kwargs: dict[str, Any] | None = None, trust_code: bool = False) -> WattlessModel:
    """Plain weights (``.safetensors`` or a ``state_dict`` ``.pt``) as a model of architecture ``model``."""
    data = as_dataset(dataset)
    spec = spec_for(model, data, model_kwargs)
    return wrap_weights(path, spec, base_meta(data, spec, 0), trust_code=trust_code)


def open_model(path: str | Path, *, model: str | None = None, dataset: Dataset | None = None,
               model_kwargs: dict[str, Any] | None = None, trust_code: bool = False) -> WattlessModel:
    """A ``.wlz`` file (packed weights kept as parametrizations), or plain weights for the architecture ``model``."""
    if Path(path).suffix in (".safetensors", ".pt", ".pth"):
        if model is None:
            raise ConfigError(f"{path} holds plain weights; pass --model NAME to say which architecture")
        if dataset is None:
            raise ConfigError(f"{path} holds plain weights; pass --dataset NAME to say what data they are for")
        return import_weights(path, model, dataset, model_kwargs=model_kwargs, trust_code=trust_code)
    return load(path, trust_code=trust_code, keep_parametrizations=True)


def as_model(model: Any, dataset: Dataset | str | None) -> tuple[Any, Dataset | str | None]:
    """A plain ``nn.Module`` wrapped (:func:`wattless.wrap`) for ``dataset``, loaded here once; anything else (a
    :class:`WattlessModel`, a path) as given."""
    from torch import nn

    if not isinstance(model, nn.Module):
        return model, dataset
    if dataset is None:
        raise ConfigError("a plain nn.Module needs dataset= (for its input shape and task), or wrap it first: "
                          "wattless.wrap(module, example_input=...)")
    data = as_dataset(dataset)
    return wrap(model, dataset=data), data


def check_savable(model: Any, out: str | Path) -> None:
    """Refuse, before any work, to write a ``.wlz`` of a model wrapped from memory that no file could rebuild."""
    if isinstance(model, WattlessModel) and Path(out).suffix == ".wlz" and model.name.startswith(IN_MEMORY):
        raise ModelError(not_rebuildable(model.name, model.spec.get("unsaved")))


def resolve_steps(steps: Sequence[str | Step]) -> list[Step]:
    """Validate every step before any work starts: CLI strings or ``(name, config)`` pairs."""
    resolved = []
    for step in steps:
        if isinstance(step, str):
            resolved.append(parse_step(step))
        else:
            name, cfg = step
            if not isinstance(cfg, get_technique(name).config_type):
                raise ConfigError(f"step {name!r} needs a {get_technique(name).config_type.__name__}")
            resolved.append((name, cfg))
    return resolved


def apply_steps(model: WattlessModel | nn.Module, dataset: Dataset | str, steps: Sequence[str | Step], *,
                seed: int | None = None, quiet: bool = True) -> WattlessModel:
    """Apply technique steps in order to a copy of ``model`` (the original is left untouched), in memory."""
    model, dataset = as_model(model, dataset)
    data = as_dataset(dataset)
    resolved = resolve_steps(steps)
    seed = model.meta.get("seed", 0) if seed is None else seed
    return run_steps(model.copy(), data, resolved, seed=seed)


def copy_model(model: WattlessModel) -> WattlessModel:
    """An independent copy: module deep-copied, metadata copied through JSON."""
    return model.copy()




def train_config(**fields: Any) -> TrainConfig:
    """A :class:`TrainConfig` from option values; a bad one is one error naming the option (``--lr``)."""
    from pydantic import ValidationError

    try:
        return TrainConfig(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        option = str(problem["loc"][0]).replace("_", "-") if problem["loc"] else "options"
        raise ConfigError(f"--{option} {str(problem['input'])[:60]!r}: {problem['msg']}") from None


@dataclass
class TrainResult:
    """A trained model written to ``path``: its size, validation and test quality, and the training's footprint."""

    path: Path
    model: WattlessModel
    size_bytes: int
    test: dict[str, float]
    footprint: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``wattless train --json``."""
        train = self.model.meta["train"]
        meta = self.model.meta
        return {"model": self.model.name, "dataset": meta["dataset"]["name"], "seed": meta["seed"],
                "artifact": str(self.path), "size_bytes": self.size_bytes, "epochs_run": train["epochs_run"],
                "val": train["val"], "test": self.test, "footprint": self.footprint}


def train_file(model: str, dataset: Dataset | str, out: str | Path, *, config: TrainConfig | None = None,
               model_kwargs: dict[str, Any] | None = None, trust_code: bool = False, force: bool = False,
               grid_intensity: float | None = None, carbon_country: str | None = None,
               on_epoch: Callable[[int, dict], None] | None = None, data_dir: str | None = None,
               target: str | None = None, task: str | None = None, **train_options: Any) -> TrainResult:
    """Train a model (as :func:`train`), write it to ``out`` (``.wlz``), and measure its test quality and the
    footprint of the training (time, energy, CO2e; the footprint stays out of the file: same seed, same bytes)."""
    from ..io import save
    from ..measurement.footprint import Footprint
    from ..measurement.footprint import grid_intensity as grid_from
    from ..train import evaluate

    if Path(out).suffix != ".wlz":
        raise ConfigError(f"-o must end in .wlz, got {str(out)!r}")
    out = check_output(out, force)
    config = config or train_config(**train_options)
    footprint = Footprint(grid=grid_from(grid_intensity, carbon_country))  # validated before any work
    data = dataset_for(dataset, data_dir=data_dir, target=target, task=task)
    with footprint:
        trained = train(model, data, model_kwargs=model_kwargs, config=config, trust_code=trust_code,
                        on_epoch=on_epoch)
    test = evaluate(trained.module, data.X_test, data.y_test, data.task)
    test.pop("loss", None)
    size = save(trained, out)
    return TrainResult(out, trained, size, test, footprint.result.as_dict())


def import_file(weights: str | Path, model: str, dataset: Dataset | str, out: str | Path, *,
                model_kwargs: dict[str, Any] | None = None, trust_code: bool = False, force: bool = False,
                data_dir: str | None = None, target: str | None = None, task: str | None = None) -> int:
    """Wrap plain weights (``.safetensors`` or a ``state_dict`` ``.pt``) of architecture ``model`` in a ``.wlz``
    file at ``out``; returns its size in bytes."""
    from ..io import save

    if Path(out).suffix != ".wlz":
        raise ConfigError(f"-o must end in .wlz, got {str(out)!r}")
    out = check_output(out, force, weights)
    data = dataset_for(dataset, data_dir=data_dir, target=target, task=task)
    return save(import_weights(weights, model, data, model_kwargs=model_kwargs, trust_code=trust_code), out)
