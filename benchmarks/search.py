"""Optuna search over the recipe space (issue 8): LeNet-300-100 on Fashion-MNIST, 1-point budget, objective size.

The search starts from the shipped deep-compression recipe (trial 0) and explores global or per-layer
sparsities and cluster counts with TPE; the budget is checked on validation and confirmed on test. Target: a
model at least as small as the best shipped recipe (the smallest ladder candidate within the budget).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import wattless
from wattless.ladder import compress_within_budget
from wattless.report.format import format_bytes
from wattless.runs.search import search

TRIALS = 12


def run(out_dir: Path, *, trials: int = TRIALS) -> dict[str, Any]:
    data = wattless.load_dataset("fashion-mnist")
    model = wattless.load(out_dir / "lenet300.wlz")
    db = out_dir / "search.db"
    for stale in (db, out_dir / "lenet300.search-size.wlz", out_dir / "lenet300.ladder-size.wlz"):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    found = search(model, data, out_dir / "lenet300.search-size.wlz", max_drop=1.0, objective="size", trials=trials,
                   db=db, model_path=out_dir / "lenet300.wlz")
    seconds = time.perf_counter() - started
    ladder = compress_within_budget(model, data, out_dir / "lenet300.ladder-size.wlz", max_drop=1.0,
                                    objective="size", repeats=20)
    shipped = next(row for row in ladder.rows if row["status"] == "chosen")
    return {"found": found, "markdown": _markdown(found, shipped, seconds)}


def _markdown(found, shipped: dict[str, Any], seconds: float) -> str:
    lines = ["## Search: `wattless search lenet300.wlz --max-drop 1 --objective size` (issue 8)", "",
             f"{len(found.rows)} Optuna trials (TPE, seed 0) over prune (global or per-layer sparsity) -> k-means "
             "(8/16/32/64 clusters, biases on 8 bits), 12 fine-tuning epochs each, starting from the shipped "
             f"deep-compression recipe (trial 0); {seconds:.0f} s in all. Drops in accuracy points on the validation "
             "split (the constraint) and the test split (the confirmation).", "",
             "| trial | status | val drop | test drop | file | parameters |", "|---|---|---|---|---|---|"]
    for row in found.rows:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        size = format_bytes(row["size"]) if "size" in row else "–"
        lines.append(f"| {row['trial']} | {row['status']} | {row.get('val_drop', float('nan')):.2f} | "
                     f"{row.get('test_drop', float('nan')):.2f} | {size} | {params} |")
    chosen = next((row for row in found.rows if row["status"] == "chosen"), None)
    best_shipped = shipped["record"]["size_bytes"]
    if chosen is None:
        verdict = "**missed** (no trial within the budget)"
    else:
        ok = chosen["size"] <= best_shipped
        verdict = (f"{format_bytes(chosen['size'])} (trial {chosen['trial']}, test drop {chosen['test_drop']:.2f}) vs "
                   f"{format_bytes(best_shipped)} for the best shipped recipe ({shipped['candidate']}, test drop "
                   f"{shipped['test_drop']:.2f}) from `compress --max-drop 1 --objective size` in the same run: "
                   + ("met" if ok else "**missed**"))
    lines += ["", f"- Search finds a model at least as small as the best shipped recipe within 1 point: {verdict}.", ""]
    return "\n".join(lines)
