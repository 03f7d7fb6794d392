"""Compressing and exporting: a recipe, steps or int8 deployment (or the best shipped recipe within an accuracy
budget) applied to a model, written, and measured against the original."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import staging_folder, write_text_atomic
from ..data import Dataset
from ..errors import ConfigError, NothingWithinBudget
from ..io import WattlessModel, load
from ..ladder import parse_energy_model
from ..pipeline import Step, StepCallback, check_output_kind, run_recipe
from ..recipe import CALIBRATION_METHODS, INT8_MODES, OBJECTIVES, Recipe, load_ladder
from ._common import check_output, check_seed, dataset_for
from ._measure import timing_options
from ._models import as_model, check_savable, resolve_steps

COMPARED_ENGINES = ("torch", "onnxruntime")
"""Engines the original and the result are timed on (an ONNX result runs in ONNX Runtime as stored)."""


@dataclass
class CompressResult:
    """The written file, its record and the original's (``baseline``), a record per recipe step, the footprint of
    the work, and with an accuracy budget the ladder's ``chosen`` candidate and every ``candidates`` row.

    It is a path-like object (``os.fspath(result)`` is the written file), so it can be passed where a path goes.
    """

    path: Path | None
    record: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    footprint: dict[str, Any] | None = None
    chosen: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    steps_file: Path | None = None

    def __fspath__(self) -> str:
        if self.path is None:
            raise ConfigError("nothing was written: no candidate stayed within the accuracy budget")
        return os.fspath(self.path)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``wattless compress --json``: the result's record with the rest beside it."""
        extra: dict[str, Any] = {"baseline": self.baseline, "footprint": self.footprint}
        if self.candidates:
            extra.update(chosen=self.chosen, candidates=self.candidates)
        else:
            extra["steps"] = self.steps
        return {**(self.record or {}), **extra}


def _recipe(steps: Sequence[str | Step], recipe: Recipe | str | Path | None, int8: bool, int8_mode: str,
            calibration: str) -> Recipe:
    if int8_mode not in INT8_MODES:
        raise ConfigError(f"--int8-mode {str(int8_mode)[:40]!r} unknown; use one of {', '.join(INT8_MODES)}")
    if calibration not in CALIBRATION_METHODS:
        raise ConfigError(f"--calibration {str(calibration)[:40]!r} unknown; use one of "
                          f"{', '.join(CALIBRATION_METHODS)}")
    if isinstance(recipe, Recipe):
        parsed = recipe
    elif recipe is not None:
        parsed = Recipe.load(recipe)
    elif all(isinstance(step, str) for step in steps) and steps:
        parsed = Recipe.from_steps(list(steps))
    else:
        parsed = Recipe(resolve_steps(steps))
    if int8:
        parsed = parsed.with_int8(int8_mode, calibration)
    if not parsed.steps:
        raise ConfigError("nothing to do: give --int8, --step TECHNIQUE[:key=value,...], --recipe or --max-drop")
    return parsed


def _source(model: WattlessModel | str | Path, trust_code: bool) -> tuple[WattlessModel, list[Path]]:
    """The model to compress with its packed weights as parametrizations (a model loaded for inference is read
    again from its file), and the file it came from, if any."""
    if isinstance(model, WattlessModel) and model.folded and model.path is not None and model.path.is_file():
        model = model.path
    if isinstance(model, WattlessModel):
        return model, []
    return load(model, trust_code=trust_code, keep_parametrizations=True), [Path(model)]


def compress(model: WattlessModel | str | Path, dataset: Dataset | str | None, out: str | Path, *,
             steps: Sequence[str | Step] = (), recipe: Recipe | str | Path | None = None, int8: bool = False,
             int8_mode: str = "static", calibration: str = "minmax", max_drop: float | None = None,
             objective: str = "size", ladder: str | Path | None = None, seed: int | None = None,
             batches: str | Sequence[int] = (1, 256), threads: int = 1, repeats: int = 50, measure_result: bool = True,
             force: bool = False, trust_code: bool = False, data_dir: str | None = None, target: str | None = None,
             task: str | None = None, grid_intensity: float | None = None, carbon_country: str | None = None,
             energy_model: str | None = None, on_step: StepCallback | None = None,
             on_candidate: Callable[[int, int, str], None] | None = None,
             on_warning: Callable[[str], None] | None = None) -> CompressResult:
    """Apply ``steps`` or a ``recipe`` (a :class:`Recipe`, a shipped name or a YAML path), optionally ending in
    int8 deployment (``int8=True``, ``int8_mode`` static or dynamic), and write ``out`` (``.wlz`` or ``.onnx``);
    or, with ``max_drop`` (points), try the ladder of shipped recipes and keep the best by ``objective`` within
    that budget on validation, confirmed on test; ``out`` ending in ``.auto`` then keeps the best candidate in its
    own format (written as ``OUT.wlz`` or ``OUT.onnx``: the result's ``path``), and ``on_warning`` hears, before any
    work, which candidates a ``.wlz`` output rules out. The original and the result are measured alike, their
    latencies timed together in alternating rounds.

    With ``objective="energy"``, ``energy_model="simulated:DESIGN"`` ranks the candidates by their energy
    simulated on that accelerator design (ZigZag, the ``hw`` extra) instead of the record's own figure.

    A recipe also writes ``OUT.steps.json``, a record after every step. Nothing is overwritten without ``force``.

    Example:
        >>> result = compress("model.wlz", "digits", "small.onnx", recipe="prune-int8")  # doctest: +SKIP
        >>> result.record["size_bytes"], result.baseline["size_bytes"]                    # doctest: +SKIP
    """
    from ..measurement.footprint import Footprint
    from ..measurement.footprint import grid_intensity as grid_from
    check_seed(seed)  # before any work (issue 17)

    model, dataset = as_model(model, dataset)
    auto = Path(out).suffix == ".auto"
    if auto and max_drop is None:
        raise ConfigError(f"-o {Path(out).name} (the best candidate in either format) goes with --max-drop; give -o "
                          "NAME.wlz or NAME.onnx")
    check_savable(model, Path(out).with_suffix(".wlz") if auto else out)
    given = [name for name, value in (("--recipe", recipe), ("--step", steps or None), ("--max-drop", max_drop))
             if value is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of --recipe, --step or --max-drop, not {' and '.join(given)}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {str(objective)[:40]!r} unknown; use one of {', '.join(OBJECTIVES)}")
    timing = timing_options(batches, threads, repeats)
    footprint = Footprint(grid=grid_from(grid_intensity, carbon_country))  # validated before any work
    inputs = [] if isinstance(model, WattlessModel) else [model]
    for written in (Path(out).with_suffix(".wlz"), Path(out).with_suffix(".onnx")) if auto else ():
        check_output(written, force, *inputs)  # either may be written: both are refused up front
    out = check_output(out, force, *inputs)
    if max_drop is not None:
        if int8:
            raise ConfigError("--int8 does not combine with --max-drop: int8 candidates are in the ladder, chosen "
                              "when -o ends in .onnx")
        candidates = load_ladder(objective, ladder)  # validated before any work
        parse_energy_model(energy_model, objective)
        source, _ = _source(model, trust_code)
        data = dataset_for(dataset, source.meta, data_dir=data_dir, target=target, task=task)
        return _within_budget(source, data, out, max_drop, objective, candidates, seed,
                              {**timing, "energy_model": energy_model}, footprint, on_candidate, on_warning)
    if energy_model:
        raise ConfigError("--energy-model ranks the candidates of --max-drop; add --max-drop and --objective energy")
    parsed = _recipe(steps, recipe, int8, int8_mode, calibration)
    check_output_kind(parsed, out)
    steps_file = check_output(out.with_name(out.name + ".steps.json"), force, *inputs)
    source, source_files = _source(model, trust_code)
    data = dataset_for(dataset, source.meta, data_dir=data_dir, target=target, task=task)
    # A kill must never leave the new model beside the old model's steps file: the recipe writes the model into a
    # staging folder, where it is also measured (a failure there leaves the user's files as they were); then the
    # old steps file goes, the model moves into place (one rename), and its steps follow. A kill in between leaves
    # the old model without steps or the new one without steps, never a mismatched pair.
    baseline = measured = None
    with staging_folder(out) as staging:
        staged = staging / out.name
        with footprint:
            pipeline = run_recipe(source, data, parsed, staged, seed=seed, on_step=on_step)
        if measure_result:
            baseline, measured = _before_after(source_files[0] if source_files else source, staged, data, timing,
                                               trust_code)
        steps_file.unlink(missing_ok=True)
        os.replace(staged, out)
    for record in [*pipeline.records, measured or {}]:  # records name the file they measured: the staged one
        if record.get("artifact") == str(staged):
            record["artifact"] = str(out)
    write_text_atomic(steps_file, json.dumps(pipeline.records, default=str, indent=1) + "\n")
    return CompressResult(out, steps=pipeline.records, footprint=footprint.result.as_dict(), steps_file=steps_file,
                          baseline=baseline, record=measured)


def _before_after(original: WattlessModel | Path, out: Path, data: Dataset, timing: dict[str, Any],
                  trust_code: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records of the original and the result, measured alike and their latencies timed together in the same
    alternating rounds (so a burst of load cannot favour either)."""
    from ..measurement.latency import time_models
    from ..measurement.record import measure_file, measure_module

    untimed = {**timing, "engines": COMPARED_ENGINES, "timed": False}
    before = (measure_module(original, data, **untimed) if isinstance(original, WattlessModel)
              else measure_file(original, data, trust_code=trust_code, **untimed))
    after = measure_file(out, data, trust_code=trust_code, **untimed)
    before["name"], after["name"] = "original", out.name
    timed = time_models({"original": original, "result": out}, data, engines=COMPARED_ENGINES,
                        trust_code=trust_code, **timing)
    before["latency_ms"], after["latency_ms"] = timed["original"], timed["result"]
    return before, after


def _within_budget(source: WattlessModel, data: Dataset, out: Path, max_drop: float, objective: str,
                   candidates: list[Recipe], seed: int | None, timing: dict[str, Any], footprint,
                   on_candidate, on_warning) -> CompressResult:
    from ..ladder import compress_within_budget

    with footprint:  # the search measures every candidate: that measuring is part of its work
        found = compress_within_budget(source, data, out, max_drop=max_drop, objective=objective, ladder=candidates,
                                       seed=seed, on_candidate=on_candidate, on_warning=on_warning, **timing)
    chosen = next((row["record"] for row in found.rows if row["status"] == "chosen"), None)
    result = CompressResult(found.path, chosen, found.baseline, footprint=footprint.result.as_dict(),
                            chosen=found.chosen, candidates=found.rows)
    if found.path is None:
        raise NothingWithinBudget(f"no candidate stays within --max-drop {max_drop:g}; nothing written. Raise the "
                                  "budget or pass --ladder with milder recipes", result)
    return result


def export(model: WattlessModel | str | Path, out: str | Path, *, format: str = "onnx", int8: bool = False,
           int8_mode: str = "static", calibration: str = "minmax", dataset: Dataset | str | None = None,
           force: bool = False, trust_code: bool = False, data_dir: str | None = None, target: str | None = None,
           task: str | None = None) -> Path:
    """Export to ONNX: fp32, static QDQ int8 calibrated on the training split of ``dataset``, or (``int8_mode=
    "dynamic"``) dynamic int8: MatMul/Gemm weights int8, activations quantized per batch at run time; or
    (``format="c"``) a dependency-free C99 library in the folder ``out`` that runs the model from its packed weights,
    compiled and checked against PyTorch first when this machine has a C compiler."""
    from ..deploy import export_model

    model, dataset = as_model(model, dataset)
    if format not in ("onnx", "c"):
        raise ConfigError(f"--format {str(format)[:40]!r} unknown; use onnx or c")
    if format == "c":
        from ..runtime.export import export_c

        if int8:
            raise ConfigError("--int8 applies to ONNX exports; the C export runs the model's own packed weights")
        source, _ = _source(model, trust_code)
        return export_c(source, out, force=force).path
    if int8_mode not in INT8_MODES:
        raise ConfigError(f"--int8-mode {str(int8_mode)[:40]!r} unknown; use one of {', '.join(INT8_MODES)}")
    out = check_output(out, force, *([] if isinstance(model, WattlessModel) else [model]))
    source, _ = _source(model, trust_code)
    static = int8 and int8_mode == "static"
    data = dataset_for(dataset, source.meta, data_dir=data_dir, target=target, task=task) if static else None
    if data is not None:
        from ..measurement.record import check_compatible

        check_compatible(source.meta, source.input_shape, data)
    return export_model(source, out, int8=int8, mode=int8_mode, calibration=calibration, data=data)
