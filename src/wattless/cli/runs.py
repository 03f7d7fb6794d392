"""``wattless runs list|show|export``: read the runs database (never create or change it)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from .. import api
from ..report import record_table
from ..report.runs import run_table, runs_table
from ._app import ForceOpt, JsonOpt, app, out, print_json, say
from .studies import DbOpt

runs_app = typer.Typer(no_args_is_help=True, help="The runs database: list, show and export result records.")
app.add_typer(runs_app, name="runs")
StudyOpt = typer.Option(None, "--study", help="Only this study.")
StatusOpt = typer.Option(None, "--status", help="Only pending, running, done or failed runs.")
ModelOpt = typer.Option(None, "--model", help="Only this model.")
DatasetOpt = typer.Option(None, "--dataset", help="Only this data set.")


@runs_app.command("list")
def runs_list(db: Path = DbOpt, study: str | None = StudyOpt, status: str | None = StatusOpt,
              model: str | None = ModelOpt, dataset: str | None = DatasetOpt, json_out: bool = JsonOpt):
    """A table of the runs, with their headline metrics."""
    rows = api.runs_rows(db, study=study, status=status, model=model, dataset=dataset)
    if json_out:
        print_json({"runs": [{k: v for k, v in row.items() if k != "record"} for row in rows]})
        return
    out.print(runs_table(rows, title=f"{len(rows)} run(s) in {db}"))


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., metavar="ID|KEY", help="Run id, trial key, or a key prefix."),
              db: Path = DbOpt, json_out: bool = JsonOpt):
    """Everything about one run: its columns and its full record."""
    row = api.runs_show(run, db)
    if json_out:
        print_json(row)
        return
    out.print(run_table(row))
    if row.get("record"):
        out.print(record_table(row["record"]))


@runs_app.command("export")
def runs_export(csv_out: bool = typer.Option(False, "--csv", help="CSV: one line per run, no record JSON."),
                json_export: bool = typer.Option(False, "--json", help='JSON: {"runs": [...]} with full records.'),
                output: Path | None = typer.Option(None, "-o", "--output", help="File to write (default: stdout)."),
                db: Path = DbOpt, study: str | None = StudyOpt, status: str | None = StatusOpt,
                model: str | None = ModelOpt, dataset: str | None = DatasetOpt, force: bool = ForceOpt):
    """Export the runs as CSV or JSON, to a file or stdout."""
    fmt = "csv" if csv_out and not json_export else "json" if json_export and not csv_out else "both"
    written = api.runs_export(fmt, db, output, force=force, study=study, status=status, model=model, dataset=dataset)
    if output is None:
        sys.stdout.write(written)
    else:
        say(f"wrote {output}")
