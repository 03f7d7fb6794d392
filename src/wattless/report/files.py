"""The results folder: ``results.json``, ``results.csv``, ``pareto.png`` and ``report.md``."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path, PurePath
from typing import Any

from .._atomic import write_text_atomic
from ..errors import WattlessError
from .comparison import Record
from .format import format_recipe
from .markdown import render_markdown
from .plots import pareto_plot

_FLAT_COLUMNS = (
    "name", "model", "dataset", "recipe", "seed", "task", "accuracy", "rmse", "mae", "r2",
    "params", "nonzero_params", "size_bytes", "size_bytes_fp32", "compression_ratio", "macs", "bops",
)
_ENERGY_COLUMNS = ("energy_j_per_sample", "energy_method", "energy_batch")


def write_results(records: list[Record], out_dir: str | os.PathLike, *, title: str, plot: bool = True,
                  notes: list[str] | None = None) -> dict[str, Path]:
    """Write the four results files into ``out_dir`` (created if needed) and return their paths.

    Each file is written atomically; other files already in the folder are left alone. Returns the
    paths under the keys ``"json"``, ``"csv"``, ``"markdown"`` and, when ``plot`` is true, ``"plot"``.
    ``notes`` are honest caveats shown as bullets in the report, e.g. how energy was obtained.
    """
    if not records:
        raise WattlessError("no result records to write; measure or compress a model first")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WattlessError(f"cannot create results folder {str(out)!r}: {error.strerror}; "
                            "choose another output folder") from error

    paths = {
        "json": write_text_atomic(out / "results.json", results_json(records)),
        "csv": write_text_atomic(out / "results.csv", results_csv(records)),
    }
    if plot:
        paths["plot"] = pareto_plot(records, out / "pareto.png")
    report = render_markdown(records, title=title, notes=notes, image="pareto.png" if plot else None)
    paths["markdown"] = write_text_atomic(out / "report.md", report)
    return paths


def results_json(records: list[Record]) -> str:
    """The records as a JSON list (indent 2, sorted keys); numpy scalars and paths become plain values."""
    return json.dumps(records, indent=2, sort_keys=True, default=_plain_json_value, ensure_ascii=False) + "\n"


def results_csv(records: list[Record]) -> str:
    """The records as CSV, one flat row each; missing values are empty cells."""
    rows = [flatten_record(record) for record in records]
    latency_columns = sorted({column for row in rows for column in row if column.startswith("latency_ms_")})
    buffer = io.StringIO()
    columns = [*_FLAT_COLUMNS, *_ENERGY_COLUMNS, *latency_columns, "artifact"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def flatten_record(record: Record) -> dict[str, Any]:
    """One CSV row: scalar keys as they are, energy split into value, method and batch, and one
    ``latency_ms_<engine>_<precision>_b<batch>`` column (median, ms) per latency entry, with a
    ``_t<threads>`` suffix when the entry did not run on one thread.
    """
    row = {column: record.get(column) for column in (*_FLAT_COLUMNS, "artifact")}
    row["recipe"] = format_recipe(record.get("recipe")) if record.get("recipe") is not None else None
    energy = record.get("energy_j_per_sample") or {}
    row.update(energy_j_per_sample=energy.get("value"), energy_method=energy.get("method"),
               energy_batch=energy.get("batch"))
    for entry in record.get("latency_ms") or []:
        column = f"latency_ms_{entry.get('engine')}_{entry.get('precision')}_b{entry.get('batch')}"
        if entry.get("threads") not in (1, None):
            column += f"_t{entry['threads']}"
        row[column] = entry.get("median")
    return row


def _plain_json_value(value: Any) -> Any:
    """JSON for the few non-JSON types records may carry: paths, numpy and torch scalars or arrays."""
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a result record holds a {type(value).__name__}, which cannot be written as JSON")
