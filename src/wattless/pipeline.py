"""Running a recipe: its steps in order on a copy of the model, a record of the model after every step, and
the result written as a ``.wlz`` model or an ``.onnx`` file (int8 when the recipe ends with ``quantize.int8``).

Intermediate records are light (no latency): quality on the validation and test splits, parameters,
non-zeros, bytes of the packed file, MACs and the estimated energy per sample, plus the step's wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import adopt_new_architecture, as_dataset, copy_model
from .data import Dataset
from .errors import ConfigError
from .io import WattlessModel, deployable_module
from .recipe import INT8_STEP, Recipe
from .techniques import Context, describe_step, get_technique
from .train import metrics_from_outputs, predict

StepCallback = Callable[[int, str], None]
"""Called with ``(position from 1, technique name)`` when a step starts."""


@dataclass
class PipelineResult:
    """The written file, the model before deployment, and one record per stage (``original`` first)."""

    path: Path
    model: WattlessModel
    records: list[dict[str, Any]] = field(default_factory=list)


def quality(outputs, data: Dataset, split: str) -> dict[str, float]:
    """Accuracy (fraction) or RMSE/MAE/R2 of ``outputs`` on ``split``, without the loss."""
    metrics = metrics_from_outputs(outputs, data.split(split)[1], data.task)
    metrics.pop("loss", None)
    return metrics


def file_quality(path: str | Path, data: Dataset, split: str) -> dict[str, float]:
    """Quality on ``split`` of a written model: a ``.wlz`` loaded in PyTorch or an ``.onnx`` run in ONNX Runtime."""
    from .deploy import OnnxModel
    from .io import load

    path = Path(path)
    X = data.split(split)[0]
    outputs = OnnxModel(path).predict(X) if path.suffix == ".onnx" else predict(
        deployable_module(load(path).module), X)
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


def run_recipe(model: WattlessModel, dataset: Dataset | str, recipe: Recipe, out: str | Path, *,
               seed: int | None = None, quiet: bool = True, record: bool = True,
               on_step: StepCallback | None = None) -> PipelineResult:
    """Apply ``recipe`` to a copy of ``model`` and write ``out`` (``.wlz``, or ``.onnx``: int8 when the recipe
    ends with ``quantize.int8``, else fp32). With ``record``, measure the model before and after every step."""
    from .api import export
    from .io import save

    out = Path(out)
    check_output_kind(recipe, out)
    data = as_dataset(dataset)
    seed = model.meta.get("seed", 0) if seed is None else seed
    result = copy_model(model)
    records = [stage_record(model, data, "original")] if record else []
    ctx = Context(dataset=data, seed=seed, quiet=quiet)
    for position, (name, cfg) in enumerate(recipe.steps, start=1):
        if on_step is not None:
            on_step(position, name)
        started = time.perf_counter()
        result.module = get_technique(name).apply(result.module, cfg, ctx)
        adopt_new_architecture(result)
        result.meta["recipe"].append(describe_step(name, cfg))
        if record:
            records.append(stage_record(result, data, name, time.perf_counter() - started))
    if on_step is not None and recipe.int8:
        on_step(len(recipe.steps) + 1, INT8_STEP)
    started = time.perf_counter()
    if out.suffix == ".wlz":
        save(result, out)
    else:
        export(result, out, int8=recipe.int8, dataset=data, calibration=recipe.calibration,
               int8_mode=recipe.int8_mode)
        if record and recipe.int8:
            records.append(stage_record(out, data, INT8_STEP, time.perf_counter() - started))
    return PipelineResult(out, result, records)


def check_output_kind(recipe: Recipe, out: Path) -> None:
    """A recipe ending in int8 deployment writes ONNX; every other recipe writes ``.wlz`` or fp32 ONNX."""
    if out.suffix not in (".wlz", ".onnx"):
        raise ConfigError(f"output must end in .wlz or .onnx, got {str(out)!r}")
    if recipe.int8 and out.suffix != ".onnx":
        raise ConfigError(f"int8 deployment writes an ONNX file; use -o {out.with_suffix('.onnx')}")
