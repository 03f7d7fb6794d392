"""The table of an Optuna search: one row per trial, with its parameters, drops and objective values."""

from __future__ import annotations

from typing import Any

from rich.console import Group

from .format import MISSING, format_bytes, format_energy, format_number
from .narrow import narrow_tables


def search_table(rows: list[dict[str, Any]], *, objective: str, max_drop: float, front: list[int],
                 width: int = 80) -> Group:
    """Trials in order; the chosen one in bold, Pareto-front members (multi-objective) marked with *; the
    parameters in a table of their own, so no row wraps in ``width`` columns."""
    headers = ["Trial", "Status", "Val drop", "Test drop", "Size", "ms/sample", "Energy (est.)"]
    cells, params = [], []
    for row in rows:
        mark = "*" if row["trial"] in front else ""
        cells.append([f"{row['trial']}{mark}", row["status"], format_number(row.get("val_drop"), ".2f"),
                      format_number(row.get("test_drop"), ".2f"), format_bytes(row["size"]) if "size" in row else
                      MISSING, format_number(row.get("latency"), ".4f"), format_energy(row.get("energy"))])
        params.append([f"{row['trial']}{mark}", ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                          for k, v in row["params"].items())])
    styles = ["bold" if row["status"] == "chosen" else None for row in rows]
    title = f"Search trials: best {objective} within {max_drop:g} lost (validation, then test)"
    trials = narrow_tables(headers, cells, title=title, left=2, styles=styles, width=width)
    return Group(trials, narrow_tables(["Trial", "Parameters"], params, left=2, styles=styles, width=width))
