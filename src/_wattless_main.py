"""The ``wattless`` console script, kept outside the ``wattless`` package: importing the package (and torch) takes
seconds, and Ctrl-C during that import must be one line and exit code 130 like Ctrl-C during a command, not a
traceback. Only this module's own import, which imports nothing, comes before the ``try``."""

import sys


def main() -> None:
    """Import the command line and run it (``wattless.cli.main``); Ctrl-C at any point: ``aborted``, exit 130."""
    try:
        from wattless.cli import main as run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        sys.exit(130)
