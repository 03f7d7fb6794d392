"""Compression within an accuracy budget: try a ladder of recipes, keep the best one that loses at most
``max_drop`` points.

Every candidate runs on a copy of the model and is measured in full (file size, latency at batch 1 and 256,
estimated energy). A candidate qualifies when its drop on the validation split is within the budget; the
qualifying candidates are ranked by the objective, and the first whose drop on the held-out test split is
also within the budget is returned. So the test split acts as a final acceptance check: a candidate that
passed on validation but fails on test is shown as ``rejected on test`` and never returned. Both drops are
reported for every candidate.

The original and every candidate are timed together in alternating rounds, so load on the machine hits them
alike; latencies whose spreads (the interquartile range of the per-round medians) overlap are a tie, won by the
smaller drop on validation, then the smaller file.

The drop is in accuracy points for classification and in percent of the original RMSE for regression.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import Dataset, as_dataset
from .errors import ConfigError, WattlessError
from .io import WattlessModel, deployable_module
from .measurement.engines import get_engine, list_engines
from .measurement.latency import time_models
from .measurement.provenance import comparable_energy
from .recipe import OBJECTIVES, Recipe, load_ladder

CandidateCallback = Callable[[int, int, str], None]
"""Called with ``(position from 1, number of candidates, recipe name)`` when a candidate starts."""
OUTPUT_SUFFIXES = (".wlz", ".onnx", ".auto")
"""``.auto``: each candidate written in its own format, the chosen one saved as ``OUT.wlz`` or ``OUT.onnx``."""
BASELINE_ENGINES = ("torch", "onnxruntime")
"""Engines the original is timed on."""


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


def engine_latency(record: dict[str, Any], key: str = "median") -> dict[str, float]:
    """Per engine the file can be deployed on (a ``.wlz`` in PyTorch or compiled by the native runtime, an ONNX
    file in ONNX Runtime), the geometric mean over the timed batches of the median ms per sample (``key="p25"`` or
    ``"p75"``: of its quartiles, the spread)."""
    wlz = str(record.get("artifact", "")).endswith(".wlz")
    found = {}
    for engine in ("torch", "native") if wlz else ("onnxruntime",):
        per_sample = [row[key] / row["batch"] for row in record["latency_ms"] if row["engine"] == engine]
        if per_sample:
            found[engine] = math.exp(sum(map(math.log, per_sample)) / len(per_sample))
    return found


def candidate_suffix(recipe: Recipe, out: Path) -> str | None:
    """The suffix a candidate is written with for the output ``out``: ``out``'s own (an ``.onnx`` output takes
    every candidate, the others exported as fp32 ONNX), the candidate's own format for ``.auto`` (int8: ``.onnx``,
    else ``.wlz``), or None when the output format rules the candidate out (int8 for a ``.wlz``)."""
    if out.suffix == ".auto":
        return recipe.output_suffix or ".wlz"
    return out.suffix if recipe.output_suffix in (None, out.suffix) else None


def ruled_out_warning(candidates: list[Recipe], out: Path) -> str | None:
    """One line naming the candidates the output format rules out and how to include them, or None."""
    ruled = [recipe for recipe in candidates if candidate_suffix(recipe, out) is None]
    if not ruled:
        return None
    names = ", ".join(str(recipe.name)[:40] for recipe in ruled)
    formats = " or ".join(sorted({str(recipe.output_suffix) for recipe in ruled}))
    return (f"-o {out.name} rules out {len(ruled)} of {len(candidates)} candidates, which deploy as {formats}: "
            f"{names}; use -o {out.with_suffix('.onnx').name} to try them too, or -o {out.with_suffix('.auto').name} "
            "to keep the best in whichever format it needs")


def compress_within_budget(model: WattlessModel, dataset: Dataset | str, out: str | Path, *, max_drop: float,
                           objective: str = "size", ladder: str | Path | list[Recipe] | None = None,
                           seed: int | None = None, batches: tuple[int, ...] = (1, 256), threads: int = 1,
                           repeats: int = 30, energy_model: str | None = None,
                           on_candidate: CandidateCallback | None = None,
                           on_warning: Callable[[str], None] | None = None) -> LadderResult:
    """Try every candidate of the ladder for ``objective`` and write the best one within ``max_drop`` to ``out``.

    ``out`` ending in ``.wlz`` skips candidates that deploy as int8 ONNX (said first, through ``on_warning``, else
    :func:`warnings.warn`); ``.onnx`` takes every candidate (the others exported as fp32 ONNX); ``.auto`` takes
    every candidate in its own format and writes the chosen one as ``OUT.wlz`` or ``OUT.onnx`` (the result's
    ``path``). The objective is measured on the file written.
    """
    from .measurement.record import measure_file, measure_module
    from .pipeline import file_quality, run_recipe
    from .train import predict, quality

    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    if not (isinstance(max_drop, int | float) and 0 <= max_drop < 100):
        raise ConfigError(f"--max-drop must be between 0 and 100 points, got {max_drop}")
    out = Path(out)
    if out.suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"output must end in .wlz, .onnx or .auto (the best in either format), got {str(out)!r}")
    design = parse_energy_model(energy_model, objective)
    candidates = ladder if isinstance(ladder, list) else load_ladder(objective, ladder)
    warning = ruled_out_warning(candidates, out)
    if warning is not None and on_warning is not None:
        on_warning(warning)
    elif warning is not None:
        warnings.warn(warning, stacklevel=2)
    data = as_dataset(dataset)
    timing = {"batches": batches, "threads": threads, "repeats": repeats}
    original = measure_module(model, data, engines=BASELINE_ENGINES, **timing, timed=False)
    original.update(name="original", val=quality(predict(deployable_module(model.module), data.X_val), data, "val"))
    base = {"val": original["val"], "test": original}
    rows: list[dict[str, Any]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        for position, recipe in enumerate(candidates, start=1):
            row: dict[str, Any] = {"candidate": recipe.name, "steps": recipe.step_names}
            rows.append(row)
            suffix = candidate_suffix(recipe, out)
            if suffix is None:
                row["status"] = f"skipped (writes {recipe.output_suffix}: needs -o .onnx or .auto)"
                continue
            if on_candidate is not None:
                on_candidate(position, len(candidates), recipe.name)
            path = Path(tmp) / f"{position}{suffix}"
            try:  # a candidate this model cannot take (e.g. a sparsity that prunes every weight) fails alone
                run_recipe(model, data, recipe, path, seed=seed, record=False)
            except WattlessError as exc:
                row["status"] = f"failed: {str(exc).splitlines()[0][:200]}"
                continue
            record = measure_file(path, data, engines=_engines(path, objective),
                                  designs=[design] if design is not None else (), **timing, timed=False)
            record["name"] = recipe.name
            val = file_quality(path, data, "val")
            row.update({"record": record, "path": path, "val": val, "val_drop": drop(base["val"], val),
                        "test_drop": drop(base["test"], record)})
            row["status"] = "within budget" if row["val_drop"] <= max_drop else "over budget"
        _time_together(model, original, rows, data, objective, timing)
        for row in rows:
            if "record" in row:
                _set_objective(row, objective)
        rank_objective(rows, objective, design.name if design is not None else None)
        chosen = choose_within_budget(rows, max_drop)
        if chosen is None:
            return LadderResult(None, None, original, _public(rows))
        final = out.with_suffix(chosen["path"].suffix) if out.suffix == ".auto" else out
        os.replace(chosen["path"], final)
        chosen["status"] = "chosen"
        chosen["record"]["artifact"] = str(final)
        result = LadderResult(final, chosen["candidate"], original, _public(rows))
    return result


def _time_together(model: WattlessModel, original: dict[str, Any], rows: list[dict[str, Any]], data: Dataset,
                   objective: str, timing: dict[str, Any]) -> None:
    """The original's and every measured candidate's ``latency_ms``, timed in the same alternating rounds."""
    measured = {f"candidate {position}": row for position, row in enumerate(rows) if "record" in row}
    models = {"original": model, **{key: row["path"] for key, row in measured.items()}}
    engines = {"original": BASELINE_ENGINES, **{key: _engines(row["path"], objective) for key, row in measured.items()}}
    timed = time_models(models, data, engines=engines, **timing)
    original["latency_ms"] = timed["original"]
    for key, row in measured.items():
        row["record"]["latency_ms"] = timed[key]


def _set_objective(row: dict[str, Any], objective: str) -> None:
    """A measured row's ``objective``; for latency also the ``engine`` it is fastest on (how to deploy it) and
    ``objective_range``, the spread of the objective there (from the quartiles of the per-round medians)."""
    record = row["record"]
    row["objective"] = objective_value(record, objective)
    if objective == "latency":
        fastest = engine_latency(record)
        row["engine"] = min(fastest.items(), key=lambda item: item[1])[0]
        row["objective_range"] = [engine_latency(record, key)[row["engine"]] for key in ("p25", "p75")]


def _engines(path: Path, objective: str) -> tuple[str, ...]:
    """Engines a candidate is timed on: ONNX Runtime for an ``.onnx`` file; PyTorch for a ``.wlz``, and for the
    latency objective also the native C runtime where this machine can build it."""
    if path.suffix == ".onnx":
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
    ``max_drop`` too; rows that pass on validation but fail on test are marked ``rejected on test``.

    Rows with an ``objective_range`` (a timed objective: [low, high]) whose range overlaps the best one's are tied:
    the difference is inside the noise, so the smaller drop on validation wins, then the smaller file, then the
    earlier row; the chosen row then names the rows it tied with in ``tied_with``.
    """
    remaining = [row for row in rows if row["status"] == "within budget"]
    while remaining:
        best = min(remaining, key=rank)
        tied = [best]
        if "objective_range" in best:
            tied = [row for row in remaining if _overlaps(row.get("objective_range"), best["objective_range"])]
            best = min(tied, key=_tie_break)
        if best["test_drop"] <= max_drop:
            if len(tied) > 1:
                best["tied_with"] = [row["candidate"] for row in tied if row is not best]
            return best
        best["status"] = "rejected on test"
        remaining.remove(best)
    return None


def _overlaps(one: list[float] | None, other: list[float]) -> bool:
    return one is not None and one[0] <= other[1] and other[0] <= one[1]


def _tie_break(row: dict[str, Any]) -> tuple[float, float]:
    """Among rows tied on the objective: the smaller drop on validation, then the smaller file."""
    return row["val_drop"], (row.get("record") or {}).get("size_bytes", math.inf)


def _public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without temporary paths (the chosen file has moved to ``out``, the others are deleted)."""
    return [{k: v for k, v in row.items() if k != "path"} for row in rows]
