"""Atomic writes after a crash (issue 17): temporaries of killed writers are cleaned on the next write of the same
file, never anything else; a compressed model and its steps file never disagree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wattless
from wattless import _atomic
from wattless._atomic import atomic_path, remove_stale_temporaries, staging_folder, write_text_atomic
from wattless.api import _compress


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _age(path: Path, seconds: float) -> Path:
    """``path`` written and last modified ``seconds`` ago."""
    path.write_text("partial")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_writer_killed_mid_write_leaves_a_temporary_the_next_write_removes(tmp_path):
    target = tmp_path / "model.onnx"
    slow_writer = (  # loads _atomic.py alone (standard library only): no second torch import, a fast start
        "import importlib.util, sys, time\n"
        "spec = importlib.util.spec_from_file_location('atomic', sys.argv[1])\n"
        "atomic = importlib.util.module_from_spec(spec); spec.loader.exec_module(atomic)\n"
        "with atomic.atomic_path(sys.argv[2]) as temporary:\n"
        "    with open(temporary, 'wb') as file:\n"
        "        file.write(b'x' * 100_000); file.flush()\n"
        "        print(temporary, flush=True)\n"
        "        time.sleep(60)\n"  # killed here, mid-write
    )
    process = subprocess.Popen([sys.executable, "-c", slow_writer, _atomic.__file__, str(target)],
                               stdout=subprocess.PIPE, text=True)
    temporary = Path(process.stdout.readline().strip())
    assert temporary.name == f".model.onnx.{process.pid}.{temporary.name.split('.')[-2]}.tmp"
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert temporary.exists() and not target.exists()  # what a kill -9 leaves
    write_text_atomic(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert target.read_text() == "new"


def test_only_our_exact_names_of_gone_writers_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    gone = [
        f".m.wlz.{dead}.0123abcd.tmp",  # writer gone
        _age(tmp_path / f".m.wlz.{alive}.0123abcd.tmp", 2 * 86400).name,  # untouched for two days: pid reused
        _age(tmp_path / ".m.wlz.0123abcd.tmp", 2 * 3600).name,  # earlier versions' names, by age
        _age(tmp_path / f".m.wlz.{'ab' * 16}.tmp", 2 * 3600).name,
    ]
    kept = [
        f".m.wlz.{alive}.4567abcd.tmp",  # a live writer
        ".m.wlz.4567abcd.tmp",  # earlier version's name, recent
        f".m.wlz.{dead}.0123abcg.tmp", f".m.wlz.{dead}.0123abc.tmp", f".m.wlz.{dead}.0123abcd.tmp.bak",
        f"m.wlz.{dead}.0123abcd.tmp", f".m.wlzx.{dead}.0123abcd.tmp", f".other.wlz.{dead}.0123abcd.tmp",
        f".m.wlz.{dead}.{dead}.0123abcd.tmp", ".m.wlz.tmp", "m.wlz",
    ]
    for name in gone + kept:
        if not (tmp_path / name).exists():
            (tmp_path / name).write_text("partial")
    _age(tmp_path / kept[-1], 2 * 86400)  # old, but not a temporary
    stale_folder = tmp_path / f".m.wlz.{dead}.feedbeef.tmp"
    (stale_folder / "inner").mkdir(parents=True)
    removed = remove_stale_temporaries(tmp_path / "m.wlz")
    assert sorted(p.name for p in removed) == sorted([*gone, stale_folder.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_link_named_like_a_temporary_is_removed_not_followed(tmp_path):
    precious = tmp_path / "keep"
    (precious / "data").mkdir(parents=True)
    (tmp_path / f".m.wlz.{_dead_pid()}.0123abcd.tmp").symlink_to(precious, target_is_directory=True)
    with atomic_path(tmp_path / "m.wlz") as temporary:
        temporary.write_text("x")
    assert (precious / "data").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "m.wlz"]


def test_a_saved_model_cleans_what_a_killed_save_left(tmp_path, trained_mlp):
    left = tmp_path / f".m.wlz.{_dead_pid()}.{'0' * 8}.tmp"
    left.write_bytes(b"\0" * 1000)
    wattless.save(trained_mlp, tmp_path / "m.wlz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wlz"]


def test_a_staging_folder_is_removed_with_its_contents(tmp_path):
    with pytest.raises(RuntimeError), staging_folder(tmp_path / "m.wlz") as folder:
        (folder / "m.wlz").write_text("half")
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == []


class Killed(BaseException):
    """A crash at a chosen point, as ``kill -9`` would cut the process short there."""


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, trained_mlp, digits):
    """``m.wlz`` compressed to ``out/p.wlz`` (pruned 50%) with its steps file."""
    folder = tmp_path_factory.mktemp("compress")
    wattless.save(trained_mlp, folder / "m.wlz")
    wattless.compress(folder / "m.wlz", digits, folder / "p.wlz", steps=["prune.magnitude:sparsity=0.5"],
                      measure_result=False)
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_crash_between_the_model_and_its_steps_never_leaves_the_old_steps(compressed, digits, monkeypatch):
    before = _files(compressed)

    def crash(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(_compress, "write_text_atomic", crash)  # dies after the model is in place
    with pytest.raises(Killed):
        wattless.compress(compressed / "m.wlz", digits, compressed / "p.wlz", steps=["prune.magnitude:sparsity=0.8"],
                          measure_result=False, force=True)
    after = _files(compressed)
    assert after["p.wlz"] != before["p.wlz"]  # the new model
    assert "p.wlz.steps.json" not in after  # and no steps file describing the old one
    assert sorted(after) == ["m.wlz", "p.wlz"]  # no staging folder left either


def test_a_failed_recompression_keeps_the_old_model_and_its_steps(compressed, digits, monkeypatch):
    before = _files(compressed)
    if "p.wlz.steps.json" not in before:  # the test above ran first: write the pair again
        wattless.compress(compressed / "m.wlz", digits, compressed / "p.wlz", steps=["prune.magnitude:sparsity=0.5"],
                          measure_result=False, force=True)
        before = _files(compressed)
    records = json.loads(before["p.wlz.steps.json"])
    assert [r["stage"] for r in records] == ["original", "prune.magnitude"]

    def fail(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(_compress, "run_recipe", fail)
    with pytest.raises(Killed):
        wattless.compress(compressed / "m.wlz", digits, compressed / "p.wlz", steps=["prune.magnitude:sparsity=0.8"],
                          measure_result=False, force=True)
    assert _files(compressed) == before
