"""Pareto plots: each variant's quality against its size on disk and against its latency."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import atomic_path
from .comparison import Record, fastest_latency, quality, shared_task

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DPI = 120


def pareto_front(points: list[tuple[float, float]], *, maximize_y: bool = True) -> list[int]:
    """Indices of the non-dominated ``(x, y)`` points, in order of increasing x; lower x is better.

    A point is dominated when another is at least as good in x and in y and differs from it;
    equal points do not dominate each other, so exact ties all stay on the front. Points with a
    non-finite coordinate are never on the front.
    """
    def at_least_as_good(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and (a[1] >= b[1] if maximize_y else a[1] <= b[1])

    finite = [i for i, point in enumerate(points) if all(math.isfinite(c) for c in point)]
    front = [
        i for i in finite
        if not any(points[j] != points[i] and at_least_as_good(points[j], points[i]) for j in finite)
    ]
    return sorted(front, key=lambda i: points[i][0])


def pareto_plot(records: list[Record], path: str | os.PathLike, *, baseline_name: str | None = None,
                energy: bool = False) -> Path:
    """Write a PNG with two panels, quality vs size on disk (KB) and vs batch-1 latency (ms), log x.

    With ``energy``, a third panel shows quality vs energy per sample (µJ), one front per energy method,
    so values obtained in different ways (an estimate, a meter) are never joined into one front.

    Quality is accuracy in % (higher is better) or, for regression, RMSE (lower is better). Each
    point is labelled with its name, the Pareto-optimal points are joined by a step line, and the
    baseline (default: the first record) is marked. Latency is the fastest engine per record.
    """
    # Imported here: matplotlib takes ~0.7 s to import, which commands that only print tables skip.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    task = shared_task(records)
    if baseline_name is None and records:
        baseline_name = records[0].get("name")
    metric = "RMSE" if task == "regression" else "accuracy"
    y_label = "RMSE (lower is better)" if task == "regression" else "accuracy (%, higher is better)"

    figure = Figure(figsize=(16.5 if energy else 11, 4.5), dpi=DPI, layout="tight")
    FigureCanvasAgg(figure)  # render with Agg, so no display is ever needed
    panels = [
        (_size_kb, "size on disk (KB, log scale)", "vs size"),
        (_latency_b1_ms, "latency at batch 1, fastest engine (ms, log scale)", "vs latency"),
    ]
    if energy:
        methods = _energy_methods(records)
        label = "one front per method" if len(methods) > 1 else methods[0] if methods else "no method"
        panels.append((_energy_uj, f"energy per sample (µJ, {_no_math(label)}, log scale)", "vs energy"))
    for axes, (x_of, x_label, title) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(_plain_tick))
        axes.xaxis.set_minor_formatter(FuncFormatter(_plain_minor_tick))
        if x_of is _energy_uj and len(methods) > 1:
            _draw_energy_panel(axes, records, methods, task, baseline_name)
        else:
            _draw_panel(axes, records, x_of, task, baseline_name)
        low, high = axes.get_xlim()
        if high < 10 * low:  # less than a decade shown: label every minor tick, or none would be
            axes.xaxis.set_minor_formatter(FuncFormatter(_plain_tick))
        axes.set(xlabel=x_label, ylabel=y_label, title=f"{metric} {title}")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    return Path(path)


def _plain_tick(value: float, _position: int) -> str:
    """A log-axis label as a plain number, ``"0.02"`` rather than ``"2 x 10^-2"``."""
    return f"{value:g}"


def _plain_minor_tick(value: float, _position: int) -> str:
    """Label only the minor ticks at 2 and 5 times a power of ten, so each decade stays readable."""
    leading_digit = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading_digit in (2, 5) else ""


def _size_kb(record: Record) -> float | None:
    size = record.get("size_bytes")
    return None if size is None else size / 1024


def _latency_b1_ms(record: Record) -> float | None:
    fastest = fastest_latency(record, batch=1)
    return None if fastest is None else fastest["median"]


def _no_math(text: str) -> str:
    """``text`` with its dollar signs escaped, so matplotlib never reads text from a file as mathtext."""
    return text.replace("$", r"\$")


def _energy_uj(record: Record) -> float | None:
    value = (record.get("energy_j_per_sample") or {}).get("value")
    return None if value is None else value * 1e6


def _energy_methods(records: list[Record]) -> list[str]:
    """The energy methods of the records that have an energy value, most common first."""
    methods = [(record.get("energy_j_per_sample") or {}).get("method") or "unknown method"
               for record in records if _energy_uj(record) is not None]
    return sorted(set(methods), key=lambda method: (-methods.count(method), method))


def _draw_energy_panel(axes: Axes, records: list[Record], methods: list[str], task: str,
                       baseline_name: str | None) -> None:
    """Energy of records obtained by different methods: each method its own colour, marker and front."""
    for position, method in enumerate(methods):
        chosen = [(x, y, str(record.get("name"))) for record in records
                  if ((record.get("energy_j_per_sample") or {}).get("method") or "unknown method") == method
                  and (x := _energy_uj(record)) is not None and x > 0 and (y := quality(record, task)) is not None]
        if not chosen:
            continue
        points = [(x, y) for x, y, _ in chosen]
        front = pareto_front(points, maximize_y=task != "regression")
        color, marker = f"C{position % 10}", "osD^v<>ph*"[position % 10]
        axes.step([points[i][0] for i in front], [points[i][1] for i in front], where="post", color=color,
                  alpha=0.5)
        axes.scatter([x for x, _ in points], [y for _, y in points], color=color, marker=marker, zorder=3,
                     label=_no_math(method))
        for x, y, name in chosen:
            axes.annotate(name + (" (baseline)" if name == baseline_name else ""), (x, y), xytext=(4, 4),
                          textcoords="offset points", fontsize=8, parse_math=False)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, title="energy method", title_fontsize=8)


def _draw_panel(axes: Axes, records: list[Record], x_of: Callable[[Record], float | None], task: str,
                baseline_name: str | None) -> None:
    """Scatter the records that have both values, label them, and draw their Pareto front."""
    points, names = [], []
    for record in records:
        x, y = x_of(record), quality(record, task)
        if x is not None and y is not None and x > 0:
            points.append((x, y))
            names.append(str(record.get("name")))
    if not points:
        axes.text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes.transAxes)
        return
    front = pareto_front(points, maximize_y=task != "regression")
    axes.step([points[i][0] for i in front], [points[i][1] for i in front], where="post",
              color="tab:green", alpha=0.7, label="Pareto front")
    for marks_baseline, style in ((False, {"color": "tab:blue", "label": "variant"}),
                                  (True, {"color": "tab:red", "marker": "s", "label": "baseline"})):
        chosen = [point for point, name in zip(points, names, strict=True)
                  if (name == baseline_name) == marks_baseline]
        if chosen:
            axes.scatter([x for x, _ in chosen], [y for _, y in chosen], zorder=3, **style)
    for (x, y), name in zip(points, names, strict=True):
        # parse_math=False: a name is text from a file, and "$...$" in it must not be read as mathtext
        axes.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8, parse_math=False)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
