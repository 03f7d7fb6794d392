"""The fuzz property itself catches what it promises to: a command standing in for ``wattless`` that crashes, writes
on a refusal, says more than one line, echoes a huge value, takes too much memory or runs too long fails it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import fuzzkit
import pytest

from wattless.testing import CliResult

pytestmark = pytest.mark.fuzz

BAD_COMMANDS = {
    "traceback": lambda: CliResult(1, "", "Traceback (most recent call last):\nValueError: x\n"),
    "writes on refusal": lambda: (Path("out.wlz").write_bytes(b"half"), CliResult(2, "", "error: no\n"))[1],
    "hidden temporary": lambda: (Path(".out.wlz.tmp").write_bytes(b"x"), CliResult(2, "", "error: no\n"))[1],
    "changes its input": lambda: (Path("in.yaml").write_text("changed"), CliResult(0, "", ""))[1],
    "two lines": lambda: CliResult(2, "", "error: one\nerror: two\n"),
    "no error prefix": lambda: CliResult(2, "", "something failed\n"),
    "huge echo": lambda: CliResult(2, "", "error: bad value " + "x" * 10_000 + "\n"),
    "exit 3": lambda: CliResult(3, "", ""),
    "memory": lambda: (bytearray(b"x" * (400 * 2**20)), CliResult(2, "", "error: no\n"))[1],
    "slow": lambda: (time.sleep(3), CliResult(0, "", ""))[1],
}


def as_cli(command) -> CliResult:
    """Run ``command`` as :func:`wattless.testing.run_cli` runs ``wattless``: an exception becomes exit 1."""
    try:
        return command()
    except Exception as exc:
        return CliResult(1, "", f"Traceback (most recent call last):\n{exc!r}\n")


@pytest.mark.parametrize("bad", sorted(BAD_COMMANDS))
def test_the_property_fails_a_bad_command(monkeypatch, bad):
    if bad == "memory" and not sys.platform.startswith("linux"):
        pytest.skip("the peak resident size is read from /proc")
    monkeypatch.setattr(fuzzkit, "run_cli", lambda *args: as_cli(BAD_COMMANDS[bad]))
    with pytest.raises(AssertionError):
        fuzzkit.run_hostile(["cmd"], {"in.yaml": b"a: 1\n"}, limit_s=1)


@pytest.mark.parametrize("good", ["success", "refusal", "warning first"])
def test_the_property_passes_a_good_command(monkeypatch, good):
    results = {"success": CliResult(0, "{}\n", "wrote out.wlz\n"), "refusal": CliResult(2, "", "error: no; do x\n"),
               "warning first": CliResult(2, "", "warning: odd\nerror: no\n")}

    def run(*args):
        if good == "success":
            Path("out.wlz").write_bytes(b"model")
        return results[good]

    monkeypatch.setattr(fuzzkit, "run_cli", run)
    assert fuzzkit.run_hostile(["cmd"], {"in.yaml": b"a: 1\n"}) == results[good]
