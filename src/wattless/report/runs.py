"""Showing runs: a Rich table of rows, the details of one run, and the sweep's live progress on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table

from .format import MISSING, format_bytes, format_energy, format_number, format_ratio, format_seconds_ms
from .narrow import narrow_tables

STATUS_STYLE = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}


def quality_text(row: dict[str, Any]) -> str:
    """Test accuracy in percent, or RMSE for regression."""
    if row.get("accuracy") is not None:
        return f"{row['accuracy'] * 100:.2f}%"
    return f"RMSE {row['rmse']:.4g}" if row.get("rmse") is not None else MISSING


def runs_table(rows: list[dict[str, Any]], *, title: str | None = None, width: int = 80) -> Group:
    """One line per run: identity, status, headline metrics (latency: the fastest engine's median), in tables of
    at most ``width`` columns that each repeat the run's id."""
    headers = ["id", "key", "study", "status", "model", "dataset", "recipe", "seed", "quality", "size", "ratio",
               "energy/sample", "latency b1", "latency b256", "seconds"]
    cells = [[str(row["id"]), (row.get("key") or MISSING)[:10], row.get("study") or MISSING,
              f"[{STATUS_STYLE.get(row['status'], '')}]{row['status']}[/]", row.get("model") or MISSING,
              row.get("dataset") or MISSING, row.get("recipe_name") or MISSING, format_number(row.get("seed"), "d"),
              quality_text(row), format_bytes(row.get("size_bytes")), format_ratio(row.get("compression_ratio")),
              format_energy(row.get("energy_j_per_sample")), format_seconds_ms(row.get("latency_b1_ms")),
              format_seconds_ms(row.get("latency_b256_ms")), format_number(row.get("seconds"), ".1f")]
             for row in rows]
    return narrow_tables(headers, cells, title=title, left=len(headers), width=width)


def run_table(row: dict[str, Any]) -> Table:
    """The columns of one run other than its record (shown by the record table)."""
    table = Table(title=f"run {row['id']}", show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")
    for name in ("key", "study", "status", "model", "dataset", "task", "recipe_name", "seed", "artifact",
                 "artifact_size", "artifact_sha256", "started", "finished", "seconds", "host", "pid", "error"):
        if row.get(name) is not None:
            table.add_row(name, str(row[name]))
    if row.get("recipe") is not None:
        steps = row["recipe"].get("steps") if isinstance(row["recipe"], dict) else row["recipe"]
        table.add_row("steps", ", ".join(next(iter(s)) if isinstance(s, dict) and len(s) == 1 else str(s)
                                         for s in steps or []) or "none")
    return table


class SweepProgress:
    """The sweep listener of the CLI: a Rich progress bar on a terminal, else one line per finished trial;
    nothing when ``quiet``. Use it as a context manager around :func:`run_sweep`."""

    def __init__(self, console: Console, *, quiet: bool = False, name: str = "sweep"):
        self.console, self.quiet, self.name = console, quiet, name
        self.progress = self.task = None

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        if kind == "start":
            self._start(info)
        elif self.progress is not None:
            row = info["row"]
            self.progress.update(self.task, completed=info["finished"],
                                 last=f"{row['status']}: {info['trial'].label} {quality_text(row)}")
        else:
            self.console.print(self._line(info), markup=False, highlight=False, soft_wrap=True)

    def _start(self, info: dict[str, Any]) -> None:
        self.name = info.get("study", self.name)
        busy = f", {info['busy']} running in another sweep (waited for)" if info["busy"] else ""
        if info["planned"]:
            text = f"{info['planned']} trial(s) to run on {info['workers']} worker(s), {info['skipped']} already done"
        else:
            text = f"nothing to run, {info['skipped']} trial(s) already done"
        self.console.print(f"{self.name}: {text}{busy}", markup=False, highlight=False)
        if self.console.is_terminal and info["planned"]:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("{task.fields[last]}"), console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("sweep", total=info["planned"], last="")

    @staticmethod
    def _line(info: dict[str, Any]) -> str:
        row, width = info["row"], len(str(info["planned"]))
        head = f"[{info['finished']:>{width}}/{info['planned']}] {row['status']:<6} {info['trial'].label}"
        if row["status"] == "failed":
            return f"{head}: {(row.get('error') or '').splitlines()[0]}"
        return (f"{head}  {quality_text(row)}  {format_bytes(row.get('size_bytes'))}  "
                f"{format_number(row.get('seconds'), '.1f')} s")
