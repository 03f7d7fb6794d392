"""Many hosts, one study: two ``wattless sweep`` processes that claim to be different hosts share one database;
one is killed (``kill -9`` of its process group) mid-run and the other takes over its trial once the lease
expires. Every trial is run and recorded once: 30 rows, none duplicated, none run by both."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from wattless.runs import load_study

COMMAND = [sys.executable, "-c", "from wattless.cli import main; main()", "sweep"]
RECIPES = [{"name": f"prune{i}", "steps": [{"prune.magnitude": {"sparsity": i / 100}}]} for i in range(1, 30)]
"""With the baseline, 30 trials of the tiny MLP: about 0.1 s of work each."""


def rows(db, where: str = "1") -> list[tuple]:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute(f"SELECT key, status, host FROM runs WHERE {where}").fetchall()
    except sqlite3.OperationalError:  # not created or migrated yet
        return []


def finished_labels(stderr: str) -> list[str]:
    """The trials a sweep reports as done, from its progress lines ``[ n/N] done   LABEL  ...``."""
    return re.findall(r"^\[ *\d+/\d+\] done +(mlp digits \S+ seed=\d+)", stderr, flags=re.MULTILINE)


@pytest.mark.slow  # timing-dependent on an idle machine (host-a may finish no trial before it is killed): -m slow
def test_two_hosts_share_a_study_and_a_killed_hosts_trial_is_taken_over(tmp_path, write_study):
    study_path = write_study(recipes=RECIPES)
    db, out = tmp_path / "runs.db", tmp_path / "out"
    command = [*COMMAND, str(study_path), "--db", str(db), "--out", str(out), "--workers", "1"]

    def start(host: str) -> subprocess.Popen:
        env = {**os.environ, "WATTLESS_HOST": host, "WATTLESS_LEASE_SECONDS": "4"}
        return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    host_a, host_b = start("host-a"), start("host-b")
    try:
        deadline = time.monotonic() + 180
        while not (len(rows(db, "status = 'done'")) >= 6 and rows(db, "status = 'running' AND host = 'host-a'")):
            assert host_a.poll() is None and time.monotonic() < deadline, host_a.stderr.read()
            time.sleep(0.02)
        os.killpg(host_a.pid, signal.SIGKILL)  # the sweep, its forkserver and its worker
        host_a.wait()
        in_flight = {key for key, _, _ in rows(db, "status = 'running' AND host = 'host-a'")}
        _, errors_b = host_b.communicate(timeout=300)
    finally:
        for proc in (host_a, host_b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert host_b.returncode == 0, errors_b
    by_a, by_b = finished_labels(host_a.stderr.read()), finished_labels(errors_b)
    host_a.stderr.close()

    trials = load_study(study_path).trials()
    final = rows(db)
    assert len(final) == 30 and sorted(key for key, _, _ in final) == sorted(t.key for t in trials)
    assert {status for _, status, _ in final} == {"done"}
    assert by_a and by_b and len(by_a) + len(by_b) == 30  # each trial finished once ...
    assert set(by_a) | set(by_b) == {t.label for t in trials}  # ... by one of the two hosts
    assert len(in_flight) <= 1  # the trial host-a was running when it died, taken over by host-b
    assert {t.label for t in trials if t.key in in_flight} <= set(by_b)
