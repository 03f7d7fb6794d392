"""The installed ``wattless`` console script as a shell script sees it: real exit codes, stdout and stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def wattless_executable() -> str:
    beside_python = Path(sys.executable).parent / "wattless"
    found = str(beside_python) if beside_python.exists() else shutil.which("wattless")
    if found is None:
        pytest.skip("the wattless console script is not installed")
    return found


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([wattless_executable(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_user_error_exits_2_with_one_line_and_no_traceback(tmp_path):
    done = run("measure", "missing.wlz", "--dataset", "digits", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "missing.wlz" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_usage_error_exits_2(tmp_path):
    done = run("train", "--model", "mlp", "--dataset", "digits", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "--output" in done.stderr and "Traceback" not in done.stderr


def test_train_json_in_a_fresh_process_gives_the_same_bytes(tmp_path, model_path, model_args):
    done = run("train", *model_args, "-o", "m.wlz", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert printed["size_bytes"] == (tmp_path / "m.wlz").stat().st_size
    assert (tmp_path / "m.wlz").read_bytes() == model_path.read_bytes()  # same seed, another process
