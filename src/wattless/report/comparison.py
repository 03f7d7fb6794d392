"""Result records compared with a baseline, as plain rows of display strings.

The Rich table (``tables.py``) and the Markdown report (``markdown.py``) both render these rows,
so the numbers in the terminal and in ``report.md`` cannot differ.
"""

from __future__ import annotations

from typing import Any

from ..errors import WattlessError
from .format import (
    MISSING,
    format_bytes,
    format_energy,
    format_number,
    format_ratio,
    format_seconds_ms,
    format_text,
)

Record = dict[str, Any]

_ENGINE_SHORT_NAMES = {"onnxruntime": "ort"}


def record_task(record: Record) -> str:
    """``'classification'`` or ``'regression'``: the record's ``task``, else inferred from its metrics."""
    if record.get("task"):
        return record["task"]
    if record.get("accuracy") is None and record.get("rmse") is not None:
        return "regression"
    return "classification"


def shared_task(records: list[Record]) -> str:
    """The task all records share; comparing classification with regression is a user error."""
    tasks = {record_task(record) for record in records}
    if len(tasks) > 1:
        raise WattlessError(
            f"cannot compare records of different tasks {sorted(tasks)}; report each data set separately"
        )
    return tasks.pop() if tasks else "classification"


def quality(record: Record, task: str) -> float | None:
    """The headline metric: accuracy in % (classification) or RMSE in target units (regression)."""
    if task == "regression":
        return record.get("rmse")
    accuracy = record.get("accuracy")
    return None if accuracy is None else 100 * accuracy


def fastest_latency(record: Record, batch: int) -> dict[str, Any] | None:
    """The latency entry with the lowest median (ms) at ``batch``, or None when none was measured."""
    entries = [
        entry for entry in record.get("latency_ms") or []
        if entry.get("batch") == batch and entry.get("median") is not None
    ]
    return min(entries, key=lambda entry: entry["median"], default=None)


def energy_per_sample(record: Record) -> tuple[float | None, str]:
    """Energy per sample (J), or None, and a label saying how it was obtained: ``"estimate-45nm, b1"``."""
    energy = record.get("energy_j_per_sample") or {}
    label = energy.get("method") or "unknown method"
    if energy.get("batch") is not None:
        label += f", b{energy['batch']}"
    return energy.get("value"), label


def latency_batches(records: list[Record]) -> list[int]:
    """The batch sizes given a latency column: always 1, plus the largest batch any record measured."""
    batches = [entry["batch"] for record in records for entry in record.get("latency_ms") or []
               if entry.get("batch") is not None]
    largest = max(batches, default=1)
    return [1, largest] if largest > 1 else [1]


def comparison_caption(baseline: Record) -> str:
    """One line saying what the deltas and ratios are relative to."""
    return (
        f"Δ and ratios vs baseline {format_text(baseline.get('name'))!r} (ratio > 1: better than baseline). "
        "Latency: fastest engine per variant, ± half the interquartile range of its round medians (noise); "
        "speed-up: the baseline's fastest median over this one's, at the same batch and threads."
    )


def comparison_rows(records: list[Record], baseline: Record | None = None) -> list[dict[str, str]]:
    """One row of display strings per record, keyed by column header, compared with ``baseline``.

    The baseline defaults to the first record. Ratios read "times better than the baseline", so the
    baseline's own row reads 1.0x: size and energy are baseline / this; speed-up is the baseline's
    fastest median at the same batch and threads / this record's fastest median (the two latency
    cells shown). Energy values are labelled with their
    method in the header when all records share one, otherwise each value carries its own, and
    energy estimated one way is never divided by energy obtained another way. Values that are
    missing or not comparable render as ``"–"``.
    """
    if not records:
        return []
    baseline = records[0] if baseline is None else baseline
    task = shared_task([*records, baseline])
    batches = latency_batches(records)
    thread_counts = {entry.get("threads") for record in records for entry in record.get("latency_ms") or []
                     if entry.get("batch") in batches}
    energies = [energy_per_sample(record) for record in records]
    energy_labels = {label for joules, label in energies if joules is not None}
    shared_energy_label = next(iter(energy_labels)) if len(energy_labels) == 1 else None

    rows = []
    for record in records:
        row = {"Variant": format_text(record.get("name"))}
        row.update(_quality_cells(record, baseline, task))
        row.update(_size_cells(record, baseline))
        for batch in batches:
            row.update(_latency_cells(record, baseline, batch, thread_counts))
        row.update(_energy_cells(record, baseline, shared_energy_label))
        rows.append(row)
    return rows


def _quality_cells(record: Record, baseline: Record, task: str) -> dict[str, str]:
    value, base = quality(record, task), quality(baseline, task)
    delta = None if value is None or base is None else value - base
    if task == "regression":
        return {"RMSE": format_number(value, ".4g"), "Δ RMSE": format_number(delta, "+.3g")}
    return {"Accuracy (%)": format_number(value, ".2f"), "Δ acc (pts)": format_number(delta, "+.2f")}


def _size_cells(record: Record, baseline: Record) -> dict[str, str]:
    size = record.get("size_bytes")
    return {"Size": format_bytes(size), "Smaller": _ratio(baseline.get("size_bytes"), size)}


def _latency_cells(record: Record, baseline: Record, batch: int,
                   thread_counts: set[int | None]) -> dict[str, str]:
    shared_threads = next(iter(thread_counts)) if len(thread_counts) == 1 else None
    header = f"Latency b{batch}" + (f" ({_threads_text(shared_threads)})" if shared_threads else "")
    speed_up_header = f"Speed-up b{batch}"
    fastest = fastest_latency(record, batch)
    if fastest is None:
        return {header: MISSING, speed_up_header: MISSING}
    label = _engine_label(fastest)
    if len(thread_counts) > 1:
        label += f", {_threads_text(fastest.get('threads'))}"
    reference = _fastest_median(baseline, batch, fastest.get("threads"))
    return {
        header: f"{format_seconds_ms(fastest['median'])}{_spread(fastest)} ({label})",
        speed_up_header: _ratio(reference, fastest["median"]),
    }


def _energy_cells(record: Record, baseline: Record, shared_label: str | None) -> dict[str, str]:
    value, label = energy_per_sample(record)
    base_value, base_label = energy_per_sample(baseline)
    header = "Energy/sample" + (f" ({shared_label})" if shared_label else "")
    text = format_energy(value)
    if value is not None and shared_label is None:
        text += f" ({label})"
    comparable = label == base_label
    return {header: text, "Less energy": _ratio(base_value, value) if comparable else MISSING}


def _fastest_median(record: Record, batch: int, threads: int | None) -> float | None:
    """The lowest median (ms) of ``record`` at ``batch`` and ``threads`` on any engine, or None."""
    medians = [entry["median"] for entry in record.get("latency_ms") or []
               if (entry.get("batch"), entry.get("threads")) == (batch, threads) and entry.get("median") is not None]
    return min(medians, default=None)


def _spread(entry: dict[str, Any]) -> str:
    """`` ± x``: half the interquartile range of a latency timed in alternating rounds (``round_medians``), else
    nothing (the quartiles of older records are of single calls, not of rounds)."""
    if not entry.get("round_medians") or entry.get("p25") is None or entry.get("p75") is None:
        return ""
    return f" ± {format_seconds_ms((entry['p75'] - entry['p25']) / 2)}"


def _engine_label(entry: dict[str, Any]) -> str:
    engine = entry.get("engine") or "unknown engine"
    engine = _ENGINE_SHORT_NAMES.get(engine, engine)
    return f"{engine} {entry['precision']}" if entry.get("precision") else engine


def _threads_text(threads: int | None) -> str:
    if threads is None:
        return "threads unknown"
    return f"{threads} thread" if threads == 1 else f"{threads} threads"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return MISSING
    return format_ratio(numerator / denominator)
