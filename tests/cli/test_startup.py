"""Starting the command line: no arguments show the help, Ctrl-C while the package imports is one line (exit 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import wattless

SLOW_TORCH_IMPORT = """
import sys, time

class SlowTorch:  # stands for the seconds torch takes to import: the test interrupts it there, deterministically
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("importing torch", flush=True)
            time.sleep(60)
        return None

sys.meta_path.insert(0, SlowTorch())
sys.argv = ["wattless", "list"]
from _wattless_main import main
sys.exit(main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_while_the_package_imports_is_one_line_and_exit_130(tmp_path):
    source = str(Path(wattless.__file__).parents[1])  # the folder holding _wattless_main.py, the console script
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-c", SLOW_TORCH_IMPORT], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline() == "importing torch\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err == "aborted\n" and out == ""


def test_the_console_script_is_the_launcher_outside_the_package():
    pyproject = Path(wattless.__file__).parents[2] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("an installed wattless: no pyproject.toml")
    assert 'wattless = "_wattless_main:main"' in pyproject.read_text()


@pytest.mark.parametrize("args", [[], ["runs"]])
def test_no_arguments_show_the_help_without_a_traceback(cli_run, args):
    result = cli_run(*args)
    assert result.code == 2
    assert "Usage: wattless" in result.out and "Commands" in result.out
    assert result.err == ""
