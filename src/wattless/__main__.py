"""``python -m wattless``: the ``wattless`` command (the console script is ``_wattless_main:main``, which also
turns Ctrl-C while the package imports into one line)."""

import sys

if __name__ == "__main__":
    try:
        from .cli import main

        main()
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        sys.exit(130)
