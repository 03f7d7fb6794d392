"""Tiny studies written to YAML, and the ``wattless`` CLI run in-process."""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from wattless import cli

TINY: dict[str, Any] = {
    "name": "tiny",
    "models": [{"name": "mlp", "kwargs": {"hidden": [16]}}],
    "datasets": ["digits"],
    "seeds": [0],
    "train": {"epochs": 1, "lr": 0.01},
    "recipes": [{"name": "ptq4", "steps": [{"quantize.ptq": {"bits": 4}}]},
                {"name": "prune50", "steps": [{"prune.magnitude": {"sparsity": 0.5}}]}],
    "measure": {"batches": [1], "repeats": 2, "engines": ["torch"]},
}
"""Three trials (baseline, ptq4, prune50) of a 64-16-10 MLP trained for one epoch: about a second of work."""


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of ``TINY``."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_study(tmp_path):
    """Write ``TINY`` with top-level keys replaced by ``changes`` to ``tmp_path/<name>.yaml``."""

    def write(name: str = "study", **changes: Any) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
        return path

    return write


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str | Path) -> Result:
    """``wattless ARGS`` in this process, as exit code, stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        patch.setattr(sys, "argv", ["wattless", *map(str, args)])
        try:
            cli.main()
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        except Exception:
            stderr.write(traceback.format_exc())
            code = 1
    return Result(code, stdout.getvalue(), stderr.getvalue())


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit 2, nothing on stdout, one ``error:`` line on stderr holding every fragment."""
    assert result.code == 2, (result.code, result.err)
    assert result.out == ""
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, repr(result.err)
    for fragment in fragments:
        assert fragment in result.err, (fragment, result.err)


@pytest.fixture(scope="session")
def wattless_cli():
    return run_cli


@pytest.fixture(scope="session")
def expect_user_error():
    return assert_user_error
