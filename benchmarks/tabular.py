"""Tabular study (issue 9): `recipes/studies/tabular.yaml` run by `wattless sweep`, plus a user CSV.

The CSV is scikit-learn's wine data written to runs/bench/wine.csv (13 numeric features, 3 classes), given
to the study as `{name: "csv:runs/bench/wine.csv", target: target}`, exactly as a user adds their own.
Quality is the mean ± std over the seeds of test accuracy (%) or RMSE (target units); size is the packed
file vs the fp32 state_dict file.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

import yaml
from sklearn.datasets import load_wine

from wattless.runs import RunsDB, run_sweep, study_from_dict

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "src" / "wattless" / "recipes" / "studies" / "tabular.yaml"


def write_wine_csv(path: Path) -> Path:
    frame = load_wine(as_frame=True).frame
    frame.to_csv(path, index=False)
    return path


def run(out_dir: Path) -> dict[str, Any]:
    folder = out_dir / "tabular"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    csv = write_wine_csv(folder / "wine.csv")
    data = yaml.safe_load(STUDY.read_text())
    data["datasets"] = [*data["datasets"], {"name": f"csv:{csv}", "target": "target"}]
    study = study_from_dict(data, source=str(STUDY))
    result = run_sweep(study, db=folder / "runs.db", out=folder / "out", workers=2)
    with RunsDB(folder / "runs.db") as runs:
        rows = runs.list(study=study.name, status="done")
    return {"rows": rows, "markdown": _markdown(rows, result, data)}


def _label(dataset: str) -> str:
    return f"{Path(dataset.removeprefix('csv:')).name} (user CSV)" if dataset.startswith("csv:") else dataset


def _cell(values: list[float], scale: float, digits: int) -> str:
    mean = statistics.fmean(values) * scale
    spread = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _models(study: dict[str, Any]) -> str:
    """The study's models as written in it, e.g. ``mlp 64-32``."""
    names = []
    for model in study["models"]:
        model = {"name": model} if isinstance(model, str) else model
        hidden = (model.get("kwargs") or {}).get("hidden")
        names.append(f"{model['name']} {'-'.join(map(str, hidden))}" if hidden else model["name"])
    return ", ".join(names)


def _markdown(rows: list[dict[str, Any]], result, study: dict[str, Any]) -> str:
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    recipes = list(dict.fromkeys(row["recipe_name"] for row in rows))
    seeds = study["seeds"]
    train = ", ".join(f"{key} {value}" for key, value in study.get("train", {}).items())
    lines = ["## Tabular study: MLPs on built-in and user CSV data (issue 9)", "",
             f"`wattless sweep recipes/studies/tabular.yaml` ({_models(study)}; {train}; seeds "
             f"{', '.join(map(str, seeds))}) plus scikit-learn's wine data written to a CSV and added as `csv:PATH` "
             "with `target: target`. Cells: test accuracy (%) or "
             f"RMSE, mean ± std over {len(seeds)} seeds, and the packed file's ratio to the fp32 file; every "
             "recipe is reported and none is chosen, so nothing is selected on the test split. "
             f"{result.ran} trials, {len(result.failed)} failed.", "",
             "| recipe | " + " | ".join(_label(d) for d in datasets) + " |", "|---|" + "---|" * len(datasets)]
    for recipe in recipes:
        cells = []
        for dataset in datasets:
            group = [r for r in rows if r["dataset"] == dataset and r["recipe_name"] == recipe]
            if not group:
                cells.append("–")
                continue
            regression = group[0]["accuracy"] is None
            quality = _cell([r["rmse"] if regression else r["accuracy"] for r in group], 1 if regression else 100,
                            1)
            ratio = statistics.fmean(r["compression_ratio"] for r in group)
            cells.append(f"{'RMSE ' if regression else ''}{quality} ({ratio:.1f}x)")
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
