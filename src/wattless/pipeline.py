"""Running techniques: the one step loop, and recipes (its steps in order on a copy of the model, a record of
the model after every step, the result written as a ``.wlz`` model or deployed by the recipe's last step).

Intermediate records are light (no latency): quality on the validation and test splits, parameters,
non-zeros, bytes of the packed file, MACs and the estimated energy per sample, plus the step's wall time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import Dataset, as_dataset
from .errors import ConfigError
from .io import WattlessModel, deployable_module, fp32_state_dict_bytes
from .recipe import Recipe
from .techniques import Context, TechniqueConfig, describe_step, get_technique
from .train import predict, quality

StepCallback = Callable[[int, str], None]
"""Called with ``(position from 1, technique name)`` when a step starts."""
Step = tuple[str, TechniqueConfig]


@dataclass
class PipelineResult:
    """The written file, the model before deployment, and one record per stage (``original`` first)."""

    path: Path
    model: WattlessModel
    records: list[dict[str, Any]] = field(default_factory=list)


def trained_batch_size(meta: dict[str, Any]) -> int | None:
    """The batch size ``meta`` says the model was trained with (fine-tuning uses it too), or None."""
    train = meta.get("train")
    config = train.get("config") if isinstance(train, dict) else None
    size = config.get("batch_size") if isinstance(config, dict) else None
    return size if type(size) is int and size >= 1 else None


def run_steps(model: WattlessModel, data: Dataset, steps: Sequence[Step], *, seed: int,
              on_step: StepCallback | None = None,
              after_step: Callable[[str, float], None] | None = None) -> WattlessModel:
    """Apply technique ``steps`` in order to ``model`` (in place; copy it first to keep the original): each
    technique is checked to apply, run, and recorded in the model's recipe. ``after_step(name, seconds)``
    runs after each. Deploying steps are not run here (:func:`run_recipe` writes them)."""
    ctx = Context(dataset=data, seed=seed, quiet=True, batch_size=trained_batch_size(model.meta))
    for position, (name, cfg) in enumerate(steps, start=1):
        technique = get_technique(name)
        if technique.deploys:
            raise ConfigError(f"{name} deploys to a file: make it the last step of a recipe written with -o OUT"
                              f"{technique.output_suffix or ''}")
        technique.check_applies(model.module, cfg)
        if on_step is not None:
            on_step(position, name)
        started = time.perf_counter()
        applied = technique.apply(model.module, cfg, ctx)
        model.module = applied.module
        if applied.new_architecture is not None:  # a student of another architecture: the file builds that
            model.meta["model"] = json.loads(json.dumps(applied.new_architecture))
        model.meta["recipe"].append(describe_step(name, cfg))
        if after_step is not None:
            after_step(name, time.perf_counter() - started)
    return model


def file_quality(path: str | Path, data: Dataset, split: str) -> dict[str, float]:
    """Quality on ``split`` of a written model: a ``.wlz`` loaded in PyTorch or an ``.onnx`` run in ONNX Runtime."""
    from .deploy import OnnxModel
    from .io import load

    path = Path(path)
    X = data.split(split)[0]
    outputs = OnnxModel(path).predict(X) if path.suffix == ".onnx" else predict(load(path).module, X)
    return quality(outputs, data, split)


def stage_record(model: WattlessModel | Path, data: Dataset, stage: str, seconds: float = 0.0) -> dict[str, Any]:
    """A record (report keys, no latency) of a model after one stage, with ``val`` metrics beside the test ones.

    ``model`` is a :class:`WattlessModel` (measured as a packed ``.wlz``) or the path of an ONNX file.
    """
    from .measurement.record import measure_module, measure_onnx

    if isinstance(model, WattlessModel):
        record = measure_module(model, data, batches=(), engines=("torch",))
        record["artifact"] = None  # measured from a temporary file
        val = quality(predict(deployable_module(model.module), data.X_val), data, "val")
    else:
        record = measure_onnx(model, data, batches=(), engines=("int8",))
        val = file_quality(model, data, "val")
    record.update({"stage": stage, "seconds": seconds, "val": val})
    return record


def original_of(model: WattlessModel) -> dict[str, Any]:
    """What the model's first compression started from (kept in its metadata): architecture, fp32 bytes."""
    known = model.meta.get("original")
    if isinstance(known, dict) and isinstance(known.get("size_bytes_fp32"), int):
        return known
    return {"model": model.meta.get("model", {}).get("name"), "size_bytes_fp32": fp32_state_dict_bytes(model)}


def run_recipe(model: WattlessModel, dataset: Dataset | str, recipe: Recipe, out: str | Path, *,
               seed: int | None = None, quiet: bool = True, record: bool = True,
               on_step: StepCallback | None = None) -> PipelineResult:
    """Apply ``recipe`` to a copy of ``model`` and write ``out``: a ``.wlz`` model, fp32 ONNX, or what the recipe's
    deploying last step writes (int8 ONNX). With ``record``, measure the model before and after every step."""
    from .deploy import export_model
    from .io import save

    out = Path(out)
    check_output_kind(recipe, out)
    data = as_dataset(dataset)
    seed = model.meta.get("seed", 0) if seed is None else seed
    result = model.copy()
    result.meta["original"] = original_of(model)
    records = [stage_record(model, data, "original")] if record else []

    def measure_stage(name: str, seconds: float) -> None:
        if record:
            records.append(stage_record(result, data, name, seconds))

    run_steps(result, data, recipe.transforms, seed=seed, on_step=on_step, after_step=measure_stage)
    started = time.perf_counter()
    if recipe.deployment is not None:
        name, cfg = recipe.deployment
        if on_step is not None:
            on_step(len(recipe.steps), name)
        get_technique(name).deploy(result, cfg, Context(dataset=data, seed=seed, quiet=quiet), out)
        if record:
            records.append(stage_record(out, data, name, time.perf_counter() - started))
    elif out.suffix == ".wlz":
        save(result, out)
    else:
        export_model(result, out)
    return PipelineResult(out, result, records)


def check_output_kind(recipe: Recipe, out: Path) -> None:
    """A recipe ending in a deployment writes that deployment's file; every other recipe writes ``.wlz`` or fp32
    ONNX."""
    if out.suffix not in (".wlz", ".onnx"):
        raise ConfigError(f"output must end in .wlz or .onnx, got {str(out)!r}")
    if recipe.output_suffix is not None and out.suffix != recipe.output_suffix:
        what = "int8 deployment" if recipe.int8 else recipe.deployment[0]
        kind = {".onnx": "an ONNX"}.get(recipe.output_suffix, f"a {recipe.output_suffix}")
        raise ConfigError(f"{what} writes {kind} file; use -o {out.with_suffix(recipe.output_suffix)}")
