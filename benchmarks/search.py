"""Optuna search over the recipe space (issues 8 and 18): LeNet-300-100 on Fashion-MNIST, 1-point budget, objective
size.

The search starts from the shipped deep-compression-auto recipe (trial 0) and explores sensitivity-driven size
ratios, global or per-layer sparsities, cluster counts or learned bit widths with TPE; the budget is checked on
validation and confirmed on test. Targets: a model at least as small as the best shipped recipe (the smallest
ladder candidate within the budget), and (issue 18) at least 150x smaller than the fp32 state_dict file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from targets import Target, verdict

import wattless
from wattless.ladder import compress_within_budget
from wattless.recipe import Recipe
from wattless.report.format import format_bytes
from wattless.runs.search import CLUSTERS, SIZE_RECIPE, TARGET_BITS, search

TRIALS = 12
MAX_DROP = 1.0
START = SIZE_RECIPE
RATIO = 150.0
"""Issue 18: the searched file at least this many times smaller than the fp32 state_dict file."""


def run(out_dir: Path, *, trials: int = TRIALS) -> dict[str, Any]:
    data = wattless.load_dataset("fashion-mnist")
    model = wattless.load(out_dir / "lenet300.wlz")
    db = out_dir / "search.db"
    for stale in (db, out_dir / "lenet300.search-size.wlz", out_dir / "lenet300.ladder-size.wlz"):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    found = search(model, data, out_dir / "lenet300.search-size.wlz", max_drop=MAX_DROP, objective="size",
                   trials=trials, db=db, model_path=out_dir / "lenet300.wlz")
    seconds = time.perf_counter() - started
    ladder = compress_within_budget(model, data, out_dir / "lenet300.ladder-size.wlz", max_drop=MAX_DROP,
                                    objective="size", repeats=20)
    shipped = next((row for row in ladder.rows if row["status"] == "chosen"), None)
    fp32 = wattless.measure(out_dir / "lenet300.wlz", data, batches=())["size_bytes_fp32"]
    return {"found": found, "markdown": _markdown(found, shipped, seconds, model.meta.get("seed", 0), fp32)}


def _step_values(rows: list[dict[str, Any]], technique: str, key: str) -> str:
    """The values ``key`` took in the ``technique`` steps of the trials' recipes, e.g. ``12`` or ``8/16``."""
    values = {step[technique][key] for row in rows for step in row["recipe"]["steps"]
              if isinstance(step, dict) and technique in step and key in step[technique]}
    return "/".join(map(str, sorted(values))) or "–"


def _start(rows: list[dict[str, Any]]) -> str:
    """What trial 0 ran: the shipped recipe the search starts from, when its steps are that recipe's."""
    first = next((row for row in rows if row["trial"] == 0), None)
    if first is not None and first["recipe"]["steps"] == Recipe.load(START).to_dict()["steps"]:
        return f"starting from the shipped {START} recipe (trial 0)"
    return "trial 0 is not the shipped recipe" if first is not None else "trial 0 did not finish"


def _markdown(found, shipped: dict[str, Any] | None, seconds: float, seed: int, fp32: int) -> str:
    rows = found.rows
    lines = [f"## Search: `wattless search lenet300.wlz --max-drop {MAX_DROP:g} --objective size` (issue 8)", "",
             f"{len(rows)} Optuna trials (TPE, seed {seed}) over prune (by measured sensitivity to a size ratio, or "
             "magnitude with a global or per-layer sparsity) -> k-means "
             f"({'/'.join(map(str, CLUSTERS))} clusters, biases on {_step_values(rows, 'share.kmeans', 'bias_bits')} "
             f"bits) or learned per-layer bit widths (mean target {TARGET_BITS[0]:g} to {TARGET_BITS[1]:g} bits per "
             f"non-zero weight), {_step_values(rows, 'prune.magnitude', 'finetune_epochs')} fine-tuning epochs each, "
             f"{_start(rows)}; {seconds:.0f} s in all. Drops in accuracy points on the validation "
             "split (the constraint, where the chosen trial and the shipped recipe are chosen) and the test split "
             "(the confirmation, judged below).", "",
             "| trial | status | val drop | test drop | file | parameters |", "|---|---|---|---|---|---|"]
    for row in found.rows:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        size = format_bytes(row["size"]) if "size" in row else "–"
        lines.append(f"| {row['trial']} | {row['status']} | {row.get('val_drop', float('nan')):.2f} | "
                     f"{row.get('test_drop', float('nan')):.2f} | {size} | {params} |")
    chosen = next((row for row in rows if row["status"] == "chosen"), None)
    if chosen is None:
        result = "**missed** (no trial within the budget on validation and test)"
    elif shipped is None:
        result = (f"{format_bytes(chosen['size'])} (trial {chosen['trial']}, test drop {chosen['test_drop']:.2f}); "
                  "met: no shipped recipe fits the budget in the same run, and the search found a model that does")
    else:
        best_shipped = shipped["record"]["size_bytes"]
        # both sizes are the bytes of files written in this run: measured
        target = Target("search's file size vs the best shipped recipe's (bytes)", "<=", best_shipped)
        result = (f"{format_bytes(chosen['size'])} (trial {chosen['trial']}, chosen on validation, test drop "
                  f"{chosen['test_drop']:.2f}) vs {format_bytes(best_shipped)} for the best shipped recipe "
                  f"({shipped['candidate']}, chosen on validation, test drop {shipped['test_drop']:.2f}) from "
                  f"`compress --max-drop {MAX_DROP:g} --objective size` in the same run: "
                  + verdict(target, chosen["size"], "measured"))
    lines += ["", f"- Search finds a model at least as small as the best shipped recipe within {MAX_DROP:g} point: "
              f"{result}."]
    if chosen is None:
        lines.append(f"- Issue 18, search >= {RATIO:g}x smaller than the fp32 state_dict file within {MAX_DROP:g} "
                     "point: **missed** (no trial within the budget).")
    else:
        ratio = fp32 / chosen["size"]
        within = chosen["test_drop"] <= MAX_DROP
        met = verdict(Target("searched file vs fp32 state_dict (x)", ">=", RATIO), ratio, "measured")
        lines.append(f"- Issue 18, search >= {RATIO:g}x smaller than the fp32 state_dict file ({fp32:,} B) within "
                     f"{MAX_DROP:g} point: {ratio:.1f}x at {chosen['test_drop']:.2f} test points ("
                     f"{met if within else '**missed** (over the budget on test)'}).")
    lines.append("")
    return "\n".join(lines)
