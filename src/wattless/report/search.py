"""The table of an Optuna search: one row per trial, with its parameters, drops and objective values."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from .format import MISSING, format_bytes, format_energy, format_number


def search_table(rows: list[dict[str, Any]], *, objective: str, max_drop: float, front: list[int]) -> Table:
    """Trials in order; the chosen one in bold, Pareto-front members (multi-objective) marked with *."""
    table = Table(title=f"Search trials: best {objective} within {max_drop:g} lost (validation, then test)")
    for header in ("Trial", "Status", "Val drop", "Test drop", "Size", "Latency (ms/sample)", "Energy", "Parameters"):
        table.add_column(header, justify="left" if header in ("Status", "Parameters") else "right")
    for row in rows:
        mark = "*" if row["trial"] in front else ""
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        table.add_row(f"{row['trial']}{mark}", row["status"], format_number(row.get("val_drop"), ".2f"),
                      format_number(row.get("test_drop"), ".2f"),
                      format_bytes(row["size"]) if "size" in row else MISSING,
                      format_number(row.get("latency"), ".4f"), format_energy(row.get("energy")), params,
                      style="bold" if row["status"] == "chosen" else None)
    return table
