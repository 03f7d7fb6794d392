"""Helpers for testing code that drives the ``wattless`` command line in-process (as typer/click's CliRunner).

``run_cli`` calls :func:`wattless.cli.main` with ``sys.argv`` patched and stdout/stderr redirected (the Rich
consoles look ``sys.stdout``/``sys.stderr`` up on every write, so they are captured too). An exception that
escapes ``main()`` is what a real process reports as a traceback and exit code 1, so it becomes exactly that.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock


class CliResult(NamedTuple):
    """Exit code, stdout and stderr of one command; unpacks as ``code, out, err``."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The whole of stdout as one JSON object (fails if the command failed or printed anything else)."""
        assert self.code == 0, self.err
        return json.loads(self.out)


def run_cli(*args: str | Path) -> CliResult:
    """Run ``wattless ARGS`` in this process."""
    from . import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with mock.patch.object(sys, "argv", ["wattless", *map(str, args)]), contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        try:
            cli.main()
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        except Exception:  # what the console script would show as a traceback, exit code 1
            stderr.write(traceback.format_exc())
            code = 1
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def assert_user_error(result: CliResult, *fragments: str) -> None:
    """Exit 2, nothing on stdout, one ``error:`` line on stderr holding every fragment."""
    assert result.code == 2, (result.code, result.err)
    assert result.out == ""
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, repr(result.err)
    for fragment in fragments:
        assert fragment in result.err, (fragment, result.err)
