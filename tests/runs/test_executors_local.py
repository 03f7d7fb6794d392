"""The local process pool under ``kill -9``: a killed sweep takes its workers, forkserver and resource tracker
with it; a killed worker costs a new pool and one more try of the trials it broke, nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattless.runs import RunsDB, load_study, run_sweep
from wattless.runs import sweep as sweep_module
from wattless.runs.executors import LocalExecutor

COMMAND = [sys.executable, "-c", "from wattless.cli import main; main()", "sweep"]
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")


def processes() -> dict[int, tuple[int, str, str]]:
    """Every process: pid -> (parent pid, state, start time in clock ticks), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:  # ended while we looked
                continue
            table[int(entry.name)] = (int(fields[1]), fields[0], fields[19])
    return table


def tree(root: int) -> dict[int, str]:
    """``root`` and its descendants: pid -> start time (a pid reused by a new process is not the same one)."""
    table, found, todo = processes(), {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found[pid] = table[pid][2]
            todo.extend(child for child, (parent, _, _) in table.items() if parent == pid)
    return found


def alive(members: dict[int, str]) -> list[int]:
    table = processes()
    return [pid for pid, start in members.items() if pid in table and table[pid][2] == start
            and table[pid][1] != "Z"]


def workers_started(root: int) -> bool:
    """The sweep's forkserver has forked both workers."""
    table = processes()
    for pid, (parent, _, _) in table.items():
        try:
            is_forkserver = parent == root and b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if is_forkserver and sum(p == pid for p, _, _ in table.values()) >= 2:
            return True
    return False


@needs_proc
def test_a_killed_sweep_takes_its_workers_forkserver_and_resource_tracker_with_it(tmp_path, write_study):
    study = write_study(seeds=[0, 1], train={"epochs": 30, "lr": 0.01})  # the workers train when the kill lands
    command = [*COMMAND, str(study), "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out"),
               "--workers", "2", "--quiet"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    members: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while not workers_started(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        members = tree(proc.pid)
        assert proc.poll() is None and len(members) >= 5, "the sweep, its forkserver, tracker and 2 workers"
        os.kill(proc.pid, signal.SIGKILL)  # the sweep alone, as `kill -9 PID` does
        proc.wait()
        deadline = time.monotonic() + 30
        while alive(members) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive(members) == []
    finally:
        for pid in alive(members):  # what this test started and left behind, by pid
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Sabotaged(LocalExecutor):
    """Runs some trials as a ``kill -9`` of the worker they land on: ``once`` the first time, ``always`` every
    time."""

    def __init__(self, workers: int, threads: int, once: str, always: str):
        super().__init__(workers, threads)
        self.once, self.always, self.kills = once, always, 0

    def submit(self, kind, trial, out):
        if kind == "trial" and trial.recipe_name in (self.once, self.always):
            if trial.recipe_name == self.once:
                self.once = None
            self.kills += 1
            return self.call(signal.raise_signal, signal.SIGKILL)
        return super().submit(kind, trial, out)


def test_a_killed_worker_is_replaced_and_the_trials_it_broke_run_once_more(tmp_path, write_study, monkeypatch):
    pools: list[Sabotaged] = []

    def make_executor(kind, *, workers, threads=1, ray_address=None):
        pools.append(Sabotaged(workers, threads, once="ptq4", always="prune50"))
        return pools[0]

    monkeypatch.setattr(sweep_module, "make_executor", make_executor)
    study = load_study(write_study())  # baseline, ptq4, prune50
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=1)
    assert pools[0].kills == 3  # ptq4 once, prune50 twice: a second loss is a failure
    assert result.ran == 2 and len(result.failed) == 1, result
    assert any("ptq4 seed=0: the worker was lost: BrokenProcessPool" in w and w.endswith("ran it again")
               for w in result.warnings), result.warnings
    with RunsDB(tmp_path / "runs.db") as runs:
        rows = {row["recipe_name"]: row for row in runs.list(study="tiny")}
    assert len(rows) == 3
    assert rows["baseline"]["status"] == rows["ptq4"]["status"] == "done"
    assert rows["prune50"]["status"] == "failed" and "the worker was lost" in rows["prune50"]["error"]
