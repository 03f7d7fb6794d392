"""The ``wattless`` command line: one small module per command group that parses options, calls the public API
(:mod:`wattless.api`) and renders its result. No logic of its own.

Exit codes: 0 ok, 2 user error (one line on stderr), 1 internal error.
"""

from . import commands  # noqa: F401  (registers every command on the app)
from ._app import app, err, main, out

__all__ = ["app", "err", "main", "out"]
