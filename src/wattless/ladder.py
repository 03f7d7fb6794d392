"""Compression within an accuracy budget: try a ladder of recipes, keep the best one that loses at most
``max_drop`` points.

Every candidate runs on a copy of the model and is measured in full (file size, latency at batch 1 and 256,
estimated energy). A candidate qualifies when its drop on the validation split is within the budget; the
qualifying candidates are ranked by the objective, and the first whose drop on the held-out test split is
also within the budget is returned. So the test split acts as a final acceptance check: a candidate that
passed on validation but fails on test is shown as ``rejected on test`` and never returned. Both drops are
reported for every candidate.

The drop is in accuracy points for classification and in percent of the original RMSE for regression.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import Dataset, as_dataset
from .errors import ConfigError
from .io import WattlessModel, deployable_module
from .measurement.engines import get_engine, list_engines
from .measurement.provenance import comparable_energy
from .recipe import OBJECTIVES, Recipe, load_ladder

CandidateCallback = Callable[[int, int, str], None]
"""Called with ``(position from 1, number of candidates, recipe name)`` when a candidate starts."""


@dataclass
class LadderResult:
    """The chosen candidate (None when none fits the budget) and a row for every candidate tried."""

    path: Path | None
    chosen: str | None
    baseline: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


def drop(baseline: dict[str, Any], metrics: dict[str, Any]) -> float:
    """Quality lost: accuracy points (classification) or percent of the baseline RMSE (regression)."""
    if "accuracy" in baseline:
        return (baseline["accuracy"] - metrics["accuracy"]) * 100
    return (metrics["rmse"] - baseline["rmse"]) / baseline["rmse"] * 100


def parse_energy_model(energy_model: str | None, objective: str):
    """The design ``simulated:DESIGN`` names (ranking simulated figures only), or None for the record's own figure
    (measured where a meter ran, else the 45 nm estimate). Candidates are simulated as written: a ``.wlz`` at its
    packed bits, an ``.onnx`` at the bits its graph stores (int8, or fp32 for a packed model exported dense)."""
    if energy_model in (None, "", "record"):
        return None
    if not str(energy_model).startswith("simulated:"):
        raise ConfigError(f"--energy-model {str(energy_model)[:60]!r} unknown; use simulated:DESIGN (e.g. "
                          "simulated:edge_tpu_like) or leave it out for the record's own energy")
    if objective != "energy":
        raise ConfigError("--energy-model goes with --objective energy")
    from .measurement.simulate import architecture

    return architecture(str(energy_model).split(":", 1)[1])


def objective_value(record: dict[str, Any], objective: str) -> float:
    """Lower is better: bytes of the file, latency (geometric mean over the timed batches of the median ms
    per sample, on the engine the file runs on), or joules per sample (the record's own figure: rank many
    records with :func:`rank_objective`, which compares energy of one provenance only)."""
    if objective == "size":
        return float(record["size_bytes"])
    if objective == "energy":
        return float(record["energy_j_per_sample"]["value"])
    return min(engine_latency(record).values())


def engine_latency(record: dict[str, Any]) -> dict[str, float]:
    """Per engine the file can be deployed on (a ``.wlz`` in PyTorch or compiled by the native runtime, an ONNX
    file in ONNX Runtime), the geometric mean over the timed batches of the median ms per sample."""
    wlz = str(record.get("artifact", "")).endswith(".wlz")
    found = {}
    for engine in ("torch", "native") if wlz else ("onnxruntime",):
        per_sample = [row["median"] / row["batch"] for row in record["latency_ms"] if row["engine"] == engine]
        if per_sample:
            found[engine] = math.exp(sum(map(math.log, per_sample)) / len(per_sample))
    return found


def compress_within_budget(model: WattlessModel, dataset: Dataset | str, out: str | Path, *, max_drop: float,
                           objective: str = "size", ladder: str | Path | list[Recipe] | None = None,
                           seed: int | None = None, batches: tuple[int, ...] = (1, 256), threads: int = 1,
                           repeats: int = 30, energy_model: str | None = None,
                           on_candidate: CandidateCallback | None = None) -> LadderResult:
    """Try every candidate of the ladder for ``objective`` and write the best one within ``max_drop`` to ``out``.

    ``out`` ending in ``.wlz`` skips candidates that deploy as int8 ONNX; ``.onnx`` takes every candidate
    (the others exported as fp32 ONNX), and the objective is measured on the file written.
    """
    from .measurement.record import measure_file, measure_module
    from .pipeline import file_quality, run_recipe
    from .train import predict, quality

    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    if not (isinstance(max_drop, int | float) and 0 <= max_drop < 100):
        raise ConfigError(f"--max-drop must be between 0 and 100 points, got {max_drop}")
    out = Path(out)
    if out.suffix not in (".wlz", ".onnx"):
        raise ConfigError(f"output must end in .wlz or .onnx, got {str(out)!r}")
    design = parse_energy_model(energy_model, objective)
    candidates = ladder if isinstance(ladder, list) else load_ladder(objective, ladder)
    data = as_dataset(dataset)
    timing = {"batches": batches, "threads": threads, "repeats": repeats}
    original = measure_module(model, data, engines=("torch", "onnxruntime"), **timing)
    original.update(name="original", val=quality(predict(deployable_module(model.module), data.X_val), data, "val"))
    base = {"val": original["val"], "test": original}
    rows: list[dict[str, Any]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        for position, recipe in enumerate(candidates, start=1):
            row: dict[str, Any] = {"candidate": recipe.name, "steps": recipe.step_names}
            rows.append(row)
            if recipe.int8 and out.suffix == ".wlz":
                row["status"] = "skipped (int8: needs -o .onnx)"
                continue
            if on_candidate is not None:
                on_candidate(position, len(candidates), recipe.name)
            path = Path(tmp) / f"{position}{out.suffix}"
            run_recipe(model, data, recipe, path, seed=seed, record=False)
            record = measure_file(path, data, engines=_engines(out, objective),
                                  designs=[design] if design is not None else (), **timing)
            record["name"] = recipe.name
            val = file_quality(path, data, "val")
            row.update({"record": record, "path": path, "val": val, "val_drop": drop(base["val"], val),
                        "test_drop": drop(base["test"], record), "objective": objective_value(record, objective)})
            if objective == "latency":  # where the file is fastest: how to deploy it
                row["engine"] = min(engine_latency(record).items(), key=lambda item: item[1])[0]
            row["status"] = "within budget" if row["val_drop"] <= max_drop else "over budget"
        rank_objective(rows, objective, design.name if design is not None else None)
        chosen = choose_within_budget(rows, max_drop)
        if chosen is None:
            return LadderResult(None, None, original, _public(rows))
        os.replace(chosen["path"], out)
        chosen["status"] = "chosen"
        chosen["record"]["artifact"] = str(out)
        result = LadderResult(out, chosen["candidate"], original, _public(rows))
    return result


def _engines(out: Path, objective: str) -> tuple[str, ...]:
    """Engines a candidate is timed on: ONNX Runtime for an ``.onnx`` output; PyTorch for a ``.wlz``, and for the
    latency objective also the native C runtime where this machine can build it."""
    if out.suffix == ".onnx":
        return ("onnxruntime",)
    if objective == "latency" and "native" in list_engines() and get_engine("native").unavailable() is None:
        return ("torch", "native")
    return ("torch",)


def rank_objective(rows: list[dict[str, Any]], objective: str, simulated: str | None = None) -> None:
    """Set every measured row's ``objective`` value so that rows compare like with like: energy of one provenance
    (measured only when every row was metered, else every row's estimate; or, with ``simulated``, every row's
    simulated energy on that design), named in ``objective_provenance``."""
    measured = [row for row in rows if "record" in row]
    if objective != "energy" or not measured:
        return
    if simulated is not None:
        for row in measured:
            entry = row["record"]["simulated"][simulated]
            row.update(objective=entry["energy_j_per_sample"], objective_provenance=f"simulated ({simulated})")
        return
    kind, values = comparable_energy([row["record"] for row in measured])
    for row, value in zip(measured, values, strict=True):
        row.update(objective=value, objective_provenance=kind)


def choose_within_budget(rows: list[dict[str, Any]], max_drop: float,
                         rank: Callable[[dict[str, Any]], Any] = lambda row: row["objective"]) -> dict[str, Any] | None:
    """The best row ``within budget`` on validation by ``rank`` (the earlier one on a tie) whose test drop is within
    ``max_drop`` too; rows that pass on validation but fail on test are marked ``rejected on test``."""
    for row in sorted((r for r in rows if r["status"] == "within budget"), key=rank):
        if row["test_drop"] <= max_drop:
            return row
        row["status"] = "rejected on test"
    return None


def _public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without temporary paths (the chosen file has moved to ``out``, the others are deleted)."""
    return [{k: v for k, v in row.items() if k != "path"} for row in rows]
