"""The public workflow functions behind both the Python API and the CLI: train, measure, compress, export."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .data import Dataset, load_dataset
from .errors import ConfigError, ModelError
from .io import WattlessModel, deployable_module, load, save  # noqa: F401  (api.save for the CLI)
from .models import build_model, check_input_shape, is_import_path
from .recipe import Recipe
from .techniques import Context, TechniqueConfig, describe_step, get_technique, parse_step
from .train import TrainConfig, fit, seed_everything

Step = tuple[str, TechniqueConfig]


def as_dataset(dataset: Dataset | str, **options) -> Dataset:
    """A :class:`Dataset` as given, or loaded by name (``options`` go to ``load_dataset``)."""
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset, **options)


def model_spec(name: str, data: Dataset, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture spec of zoo model ``name`` sized for ``data``.

    Regression zoo models get the training targets' mean and standard deviation so that they learn
    a standardised target but predict in the data's units.
    """
    kwargs = dict(kwargs or {})
    if data.task == "regression" and not is_import_path(name):
        kwargs.setdefault("target_mean", float(data.y_train.mean()))
        kwargs.setdefault("target_std", float(data.y_train.std() or 1.0))
    return {"name": name, "kwargs": kwargs, "input_shape": list(data.input_shape), "num_outputs": data.num_outputs}


def base_meta(data: Dataset, spec: dict[str, Any], seed: int) -> dict[str, Any]:
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


def train(model: str, dataset: Dataset | str, *, model_kwargs: dict[str, Any] | None = None,
          config: TrainConfig | None = None, trust_code: bool = False,
          on_epoch: Callable[[int, dict], None] | None = None, **train_options) -> WattlessModel:
    """Build zoo model ``model`` (or ``package.module:factory``) for ``dataset`` and train it.

    Example:
        >>> m = train("mlp", "digits", epochs=1, seed=0)  # doctest: +SKIP
    """
    data = as_dataset(dataset)
    config = config or TrainConfig(**train_options)
    spec = model_spec(model, data, model_kwargs)
    check_trainable_size(spec, trust_code=trust_code)
    seed_everything(config.seed)  # the initial weights come from the seed too
    module = build_model(spec, trust_code=trust_code)
    check_input_shape(module, data.input_shape)
    summary = fit(module, data, config, on_epoch=on_epoch)
    meta = base_meta(data, spec, config.seed)
    meta["train"] = {"config": config.model_dump(mode="json"), "epochs_run": summary["epochs_run"],
                     "best_epoch": summary["best_epoch"], "val": summary["val"]}
    return WattlessModel(module, meta)


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


def apply_steps(model: WattlessModel, dataset: Dataset | str, steps: Sequence[str | Step], *,
                seed: int | None = None, quiet: bool = True) -> WattlessModel:
    """Apply technique steps in order to a copy of ``model``; the original is left untouched."""
    data = as_dataset(dataset)
    resolved = resolve_steps(steps)
    seed = model.meta.get("seed", 0) if seed is None else seed
    result = copy_model(model)
    ctx = Context(dataset=data, seed=seed, quiet=quiet)
    for name, cfg in resolved:
        result.module = get_technique(name).apply(result.module, cfg, ctx)
        adopt_new_architecture(result)
        result.meta["recipe"].append(describe_step(name, cfg))
    return result


def copy_model(model: WattlessModel) -> WattlessModel:
    """An independent copy: module deep-copied, metadata copied through JSON."""
    return WattlessModel(copy.deepcopy(model.module), json.loads(json.dumps(model.meta)))


NEW_SPEC_ATTRIBUTE = "_wattless_spec"
"""A technique that returns a model of another architecture (a distillation student) sets this attribute on it
to the student's architecture spec; :func:`apply_steps` moves it into the model's metadata."""


def adopt_new_architecture(model: WattlessModel) -> None:
    """Record the architecture spec a technique attached to ``model.module``, so the file builds that model."""
    spec = getattr(model.module, NEW_SPEC_ATTRIBUTE, None)
    if spec is not None:
        model.meta["model"] = json.loads(json.dumps(spec))
        delattr(model.module, NEW_SPEC_ATTRIBUTE)


def export(model: WattlessModel | str | Path, path: str | Path, *, int8: bool = False,
           dataset: Dataset | str | None = None, calibration: str = "minmax", int8_mode: str = "static",
           trust_code: bool = False) -> Path:
    """Export to ONNX: fp32, static QDQ int8 calibrated on the training split of ``dataset``, or (``int8_mode=
    "dynamic"``) dynamic int8: MatMul/Gemm weights int8, activations quantized per batch at run time."""
    from .deploy import export_onnx, quantize_dynamic_int8, quantize_int8
    from .measurement.ops import count_params
    from .measurement.record import CALIBRATION_SAMPLES, check_compatible, fp32_state_dict_bytes

    if not isinstance(model, WattlessModel):
        model = load(model, trust_code=trust_code)
    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"ONNX output must end in .onnx, got {str(path)!r}")
    if int8_mode not in ("static", "dynamic"):
        raise ConfigError(f"int8 mode {int8_mode!r} unknown; use static or dynamic")
    if int8 and int8_mode == "static" and dataset is None:
        raise ConfigError("static int8 export needs calibration data; pass --dataset NAME (or --int8-mode dynamic)")
    module = deployable_module(model.module)
    params, nonzero = count_params(module)
    meta = {**model.meta, "size_bytes_fp32": fp32_state_dict_bytes(model), "params": params,
            "nonzero_params": nonzero}
    if not int8:
        return export_onnx(module, model.input_shape, path, metadata={"wattless": json.dumps(meta, sort_keys=True)})
    data = as_dataset(dataset) if dataset is not None else None
    if data is not None:
        check_compatible(model.meta, model.input_shape, data)
    config = ({"calibration": calibration, "per_channel": True, "format": "QDQ"} if int8_mode == "static"
              else {"mode": "dynamic", "per_channel": True, "ops": ["MatMul", "Gemm"]})
    meta["recipe"] = [*meta.get("recipe", []), {"technique": "quantize.int8",
                                                 "config": {**config, "engine": "onnxruntime"}}]
    tmp_fp32 = path.with_name(f".{path.name}.fp32.tmp.onnx")
    try:
        export_onnx(module, model.input_shape, tmp_fp32, metadata={"wattless": json.dumps(meta, sort_keys=True)})
        if int8_mode == "dynamic":
            return quantize_dynamic_int8(tmp_fp32, path)
        return quantize_int8(tmp_fp32, path, data.X_train[:CALIBRATION_SAMPLES], method=calibration)
    finally:
        tmp_fp32.unlink(missing_ok=True)


def measure(model: WattlessModel | str | Path, dataset: Dataset | str, *, trust_code: bool = False,
            **options) -> dict[str, Any]:
    """One result record (ARCHITECTURE.md keys) for a model, a ``.wlz`` file or an ``.onnx`` file."""
    from .measurement.record import measure_module, measure_onnx

    data = as_dataset(dataset)
    if isinstance(model, WattlessModel):
        return measure_module(model, data, **options)
    path = Path(model)
    if path.suffix == ".onnx":
        return measure_onnx(path, data, **options)
    return measure_module(load(path, trust_code=trust_code), data, file_path=path, **options)


def compress(model: WattlessModel | str | Path, dataset: Dataset | str, out: str | Path, *,
             steps: Sequence[str | Step] = (), recipe: Recipe | str | Path | None = None, int8: bool = False,
             calibration: str = "minmax", trust_code: bool = False, seed: int | None = None) -> Path:
    """Apply ``steps`` (or a ``recipe``: a :class:`Recipe`, a shipped recipe name or a YAML path) then write
    ``out``: a ``.wlz`` model, or an ``.onnx`` file (int8 with ``int8=True`` or a recipe ending in int8).

    Example:
        >>> compress("model.wlz", "digits", "small.onnx", recipe="prune-int8")  # doctest: +SKIP
    """
    from .pipeline import run_recipe

    if recipe is not None and steps:
        raise ConfigError("give either steps or a recipe, not both")
    if recipe is None:
        recipe = Recipe(steps=resolve_steps(steps), int8=int8, calibration=calibration)
    elif not isinstance(recipe, Recipe):
        recipe = Recipe.load(recipe)
    if not recipe.steps and not recipe.int8:
        raise ConfigError("nothing to do: give --int8 and/or --step TECHNIQUE[:key=value,...] or --recipe")
    data = as_dataset(dataset)
    if not isinstance(model, WattlessModel):
        model = load(model, trust_code=trust_code)
    return run_recipe(model, data, recipe, out, seed=seed, record=False).path
