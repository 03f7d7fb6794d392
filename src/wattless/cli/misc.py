"""``wattless list``, ``demo`` and ``report``."""

from __future__ import annotations

from pathlib import Path

import typer

import wattless

from .. import api
from ..errors import ConfigError
from ..report import comparison_table
from ._app import JsonOpt, QuietOpt, app, out, print_json, say


@app.command(name="list")
def list_registered(what: str = typer.Argument("all", help="models, datasets, techniques, engines, recipes or "
                                               "all.")):
    """List the registered models, data sets, techniques, engines and shipped recipes."""
    tables = {"models": wattless.list_models() + ["package.module:factory"],
              "datasets": wattless.list_datasets() + ["csv:PATH", "ts:PATH"],
              "techniques": wattless.list_techniques(), "engines": wattless.list_engines(),
              "recipes": wattless.list_recipes()}
    if what != "all" and what not in tables:
        raise ConfigError(f"cannot list {what[:40]!r}; use models, datasets, techniques, engines, recipes or all")
    for name, entries in tables.items():
        if what in ("all", name):
            out.print(f"[bold]{name}[/]: " + ", ".join(entries), soft_wrap=True)


@app.command()
def demo(
    output: Path = typer.Option(Path("runs/demo"), "-o", "--output", help="Folder for the report."),
    force: bool = typer.Option(False, "--force", help="Write into a folder holding other files, overwriting the "
                               "demo's (without it, only an earlier demo's unchanged output is refreshed)."),
    quiet: bool = QuietOpt, json_out: bool = JsonOpt,
):
    """Train an MLP on digits, compress it two ways, measure everything, and write a report."""
    records, files = api.demo(output, log=None if (quiet or json_out) else say, force=force)
    if json_out:
        print_json({"records": records, "files": {k: str(v) for k, v in files.items()}})
        return
    out.print(comparison_table(records, title="wattless demo: MLP on digits (1 thread)"))
    out.print(f"report: {files['markdown']}", markup=False, highlight=False)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., metavar="RUNS", help="Results folders (searched recursively), JSON "
                                      "files of records (results.json, measure --json, OUT.steps.json) or runs.db."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for report.html, report.md and plots."),
    title: str = typer.Option("wattless report", "--title", help="Title of the report."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report in the folder."),
):
    """Write a self-contained HTML report and a Markdown one of result records: tables, Pareto fronts of
    quality vs size, latency and energy, and per-layer breakdowns, grouped per data set."""
    files = api.report(runs, output, title=title, force=force)
    say(f"wrote {files['html']} and {files['markdown']} ({len(files['plots'])} plot(s))")
