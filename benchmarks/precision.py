"""The precision study: quality and loss vs bits for every PTQ scheme and QAT, on each workload.

Reads recipes/studies/precision.yaml, trains each workload's fp32 model once (seed 0), then
quantizes it with every method at every bit width (stochastic methods over several seeds: mean
and standard deviation) and with QAT, evaluating on the test split. Writes precision.csv and one
plot per workload (quality vs bits, one line per method).
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

import yaml

import wattless
from wattless.api import apply_steps
from wattless.errors import ModelError
from wattless.techniques import make_config
from wattless.train import evaluate

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "recipes" / "studies" / "precision.yaml"


def method_label(ptq: dict[str, Any]) -> str:
    return ptq["method"] if ptq["method"] == "midrise" else f"{ptq['method']}-{ptq['landmarks']}"


def _quality(metrics: dict[str, float]) -> float:
    return metrics["accuracy"] if "accuracy" in metrics else metrics["rmse"]


def _evaluate(model, data) -> dict[str, float]:
    return evaluate(model.module, data.X_test, data.y_test, data.task)


def run_workload(workload: dict[str, Any], study: dict[str, Any]) -> list[dict[str, Any]]:
    data = wattless.load_dataset(workload["dataset"])
    model = wattless.train(workload["model"], data, model_kwargs=workload.get("model_kwargs"), seed=0,
                           **workload.get("train", {}))
    base = _evaluate(model, data)
    name = f"{workload['model']} on {workload['dataset']}"
    rows = [{"workload": name, "method": "fp32", "bits": 32, "quality": _quality(base), "quality_std": 0.0,
             "loss": base["loss"], "metric": "accuracy" if "accuracy" in base else "rmse"}]
    for ptq in study["ptq"]:
        seeds = study["stochastic_seeds"] if ptq["method"] == "stochastic" else [0]
        for bits in study["bits"]:
            step = ("quantize.ptq", make_config("quantize.ptq", {**ptq, "bits": bits}))
            try:
                results = [_evaluate(apply_steps(model, data, [step], seed=seed), data) for seed in seeds]
            except ModelError:  # more landmarks than a small layer has distinct weights: not applicable
                continue
            rows.append(_row(name, method_label(ptq), bits, results))
    qat = study["qat"]
    for bits in qat["bits"]:
        step = ("quantize.qat", make_config("quantize.qat", {"bits": bits, "method": qat["method"],
                                                             "epochs": qat["epochs"]}))
        rows.append(_row(name, f"qat-{qat['method']}", bits, [_evaluate(apply_steps(model, data, [step]), data)]))
    return rows


def _row(workload: str, method: str, bits: int, results: list[dict[str, float]]) -> dict[str, Any]:
    quality = [_quality(r) for r in results]
    return {"workload": workload, "method": method, "bits": bits, "quality": statistics.fmean(quality),
            "quality_std": statistics.stdev(quality) if len(quality) > 1 else 0.0,
            "loss": statistics.fmean(r["loss"] for r in results),
            "metric": "accuracy" if "accuracy" in results[0] else "rmse"}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    figure = Figure(figsize=(6 * len(workloads), 4.5), dpi=110, layout="tight")
    FigureCanvasAgg(figure)
    for axes, workload in zip(figure.subplots(1, len(workloads), squeeze=False)[0], workloads, strict=True):
        mine = [r for r in rows if r["workload"] == workload]
        fp32 = next(r for r in mine if r["method"] == "fp32")
        scale = 100 if fp32["metric"] == "accuracy" else 1
        for method in dict.fromkeys(r["method"] for r in mine if r["method"] != "fp32"):
            line = sorted((r for r in mine if r["method"] == method), key=lambda r: r["bits"])
            axes.errorbar([r["bits"] for r in line], [r["quality"] * scale for r in line],
                          yerr=[r["quality_std"] * scale for r in line], marker="o", ms=3, label=method)
        axes.axhline(fp32["quality"] * scale, color="black", ls="--", lw=1, label="fp32")
        axes.set(title=workload, xlabel="bits per weight",
                 ylabel="test accuracy (%)" if scale == 100 else "test RMSE (lower is better)")
        if scale == 100:
            axes.set_ylim(max(0, fp32["quality"] * 100 - 30), fp32["quality"] * 100 + 2)
        axes.legend(fontsize=7)
    figure.savefig(path)


def run(out_dir: Path) -> dict[str, Any]:
    study = yaml.safe_load(STUDY.read_text())
    rows = [row for workload in study["workloads"] for row in run_workload(workload, study)]
    with open(out_dir / "precision.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out_dir / "precision.png")
    return {"rows": rows, "markdown": _markdown(rows, study)}


def _show(row: dict[str, Any], scale: float) -> str:
    """Quality in display units (% or RMSE), with its standard deviation over seeds when there is one."""
    text = f"{row['quality'] * scale:.2f}"
    return text + f" ± {row['quality_std'] * scale:.2f}" if row["quality_std"] else text


def _markdown(rows: list[dict[str, Any]], study: dict[str, Any]) -> str:
    qat, seeds = study["qat"], len(study["stochastic_seeds"])
    lines = ["## Precision study", "",
             f"`{STUDY.relative_to(ROOT)}`: test quality vs bits per weight for every PTQ scheme (stochastic: "
             f"mean ± std over {seeds} seed{'s' if seeds != 1 else ''}) and {qat['method'].upper()} QAT "
             f"({qat['epochs']} epochs). Accuracy in %, or RMSE for regression. An empty "
             "cell: histogram/normal landmarks need more values than a layer has distinct weights (refused). "
             "The study reports every cell and chooses nothing, so no figure is selected on the test split. "
             "Full table: `runs/bench/precision.csv`; plot: `runs/bench/precision.png`.", ""]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == workload]
        bits = sorted({r["bits"] for r in mine if r["method"] != "fp32"})
        fp32 = next(r for r in mine if r["method"] == "fp32")
        scale = 100 if fp32["metric"] == "accuracy" else 1
        lines += [f"### {workload} (fp32: {_show(fp32, scale)})", "",
                  "| method | " + " | ".join(f"{b} b" for b in bits) + " |", "|---|" + "---|" * len(bits)]
        for method in dict.fromkeys(r["method"] for r in mine if r["method"] != "fp32"):
            by_bits = {r["bits"]: r for r in mine if r["method"] == method}
            lines.append(f"| {method} | " + " | ".join(_show(by_bits[b], scale) if b in by_bits else "" for b in bits)
                         + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
