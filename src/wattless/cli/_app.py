"""The Typer application, its consoles and shared options, and the entry point that turns errors into one line.

Exit codes: 0 ok, 2 user error (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

from ..api import as_json
from ..errors import WattlessError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Make neural networks smaller, faster and greener, and prove it with measurements.")
out = Console()
err = Console(stderr=True)

DatasetOpt = typer.Option(None, "--dataset", "-d", help="Data set name, csv:PATH or ts:PATH.")
DataDirOpt = typer.Option(None, "--data-dir", help="Folder holding the data set files.")
TargetOpt = typer.Option(None, "--target", help="Label column of a csv:PATH data set.")
TaskOpt = typer.Option(None, "--task", help="classification or regression (csv:PATH; default inferred).")
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output.")
ForceOpt = typer.Option(False, "--force", help="Overwrite the output file if it exists.")
TrustOpt = typer.Option(False, "--trust-code", help="Allow importing a package.module:factory model.")
ModelArgOpt = typer.Option(None, "--model-arg", help="Model option key=value (repeat).")
BatchOpt = typer.Option("1,256", "--batch", help="Batch sizes to time, comma-separated.")
ThreadsOpt = typer.Option(1, "--threads", help="CPU threads for every engine, 1 to 256.")
RepeatsOpt = typer.Option(50, "--repeats", help="Timed runs per engine and batch, 1 to 100000.")
GridOpt = typer.Option(None, "--grid-intensity", help="Carbon intensity of your electricity, g CO2e/kWh, for the "
                       "footprint (default: $WATTLESS_GRID_INTENSITY, else the world average 475).")
CountryOpt = typer.Option(None, "--carbon-country", help="ISO3 country (e.g. FRA) whose grid intensity to take "
                          "from CodeCarbon's bundled data (pip install 'wattless\\[carbon]').")


def data_options(data_dir: str | None, target: str | None, task: str | None) -> dict[str, Any]:
    """The ``--data-dir``, ``--target`` and ``--task`` values as the API's keyword arguments."""
    return {"data_dir": data_dir, "target": target, "task": task}


def print_json(value: Any) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(as_json(value) + "\n")


def say(text: str) -> None:
    """A plain line on stderr (file names and such are not read as Rich markup)."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


def footprint_summary(footprint: dict[str, Any] | None, quiet: bool) -> None:
    """The compute footprint of a command on stderr: time, energy (and how it was obtained), CO2e."""
    from ..report.format import format_footprint

    if not quiet and footprint:
        say(format_footprint(footprint))


MAX_MESSAGE = 1000
"""Most characters of an error line: a message echoes values the user gave, and those may be huge."""


def one_line(text: str) -> str:
    """``text`` on one line (newlines and runs of spaces become one space), cut to :data:`MAX_MESSAGE` characters."""
    text = " ".join(text[: MAX_MESSAGE * 4].split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def main() -> None:
    """Console entry point (``wattless.cli:main``: the package registers every command first): user errors become
    one line and exit code 2; no arguments show the help (exit code 2); Ctrl-C is one line, exit code 130."""
    from typer.exceptions import TyperException
    from typer.main import get_command

    command = get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="wattless", standalone_mode=False)
    except WattlessError as exc:
        sys.stderr.write(f"error: {one_line(str(exc))}\n")
        sys.exit(2)
    except TyperException as exc:  # a usage error (missing or unknown option, bad value): one line too
        if type(exc).__name__ == "NoArgsIsHelpError":  # `wattless`, `wattless runs`: the help is already shown
            sys.stdout.write(exc.format_message())
            sys.exit(2)
        if not hasattr(exc, "format_message"):
            raise
        context = getattr(exc, "ctx", None)
        where = f"{context.command_path} --help" if context is not None else "wattless --help"
        sys.stderr.write(f"error: {one_line(exc.format_message())} (see {where})\n")
        sys.exit(getattr(exc, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C
        sys.stderr.write("aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
