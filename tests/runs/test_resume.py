"""Resume after ``kill -9``: the real command in its own process group, killed (parent, forkserver and
workers) at random points, then run to completion. No trial may be lost or duplicated, no artifact half
written, no temporary file left behind."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wattless
from wattless.runs import load_study

COMMAND = [sys.executable, "-c", "from wattless.cli import main; main()", "sweep"]
RECIPES = [{"name": f"ptq{bits}", "steps": [{"quantize.ptq": {"bits": bits}}]} for bits in (2, 4)] + [
    {"name": f"prune{s}", "steps": [{"prune.magnitude": {"sparsity": s / 100, "finetune_epochs": 4}}]} for s in (50, 80)
] + [{"name": "kmeans16", "steps": [{"share.kmeans": {"clusters": 16, "finetune_epochs": 1}}]}]
MODELS = [{"name": "mlp", "kwargs": {"hidden": [512, 512]}}]
"""A 64-512-512-10 MLP: each trial lasts ~0.5-1 s, long enough for the kills to land inside trials."""


def done_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
    except sqlite3.OperationalError:  # created but not yet migrated
        return 0


def kill_and_resume(tmp_path: Path, study_path: Path, kills: int, seed: int) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    command = [*COMMAND, str(study_path), "--db", str(db), "--out", str(out), "--workers", "2", "--quiet"]
    rng = random.Random(seed)
    for _ in range(kills):
        before = done_count(db)
        proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while done_count(db) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.5))  # at a random point of the next trials
        assert proc.poll() is None, f"the sweep ended before it was killed: {proc.stderr.read().decode()}"
        os.killpg(proc.pid, signal.SIGKILL)  # the parent, the forkserver and every worker
        proc.wait()
        proc.stderr.close()
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr

    trials = load_study(study_path).trials()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, status, artifact FROM runs").fetchall()
    assert len(rows) == len(trials)  # nothing duplicated ...
    assert sorted(key for key, _, _ in rows) == sorted(t.key for t in trials)  # ... nothing lost
    assert {status for _, status, _ in rows} == {"done"}
    for _, _, artifact in rows:  # every artifact whole
        wattless.load(artifact)
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    assert leftovers == []
    assert len(list((out / "trials").iterdir())) == sum(t.recipe is not None for t in trials)
    assert len(list((out / "base").iterdir())) == len({t.base_key for t in trials})


@pytest.fixture
def twelve_trials(write_study):
    """2 seeds x (baseline + 5 recipes)."""
    return write_study(seeds=[0, 1], recipes=RECIPES, models=MODELS, train={"epochs": 2, "lr": 0.01})


@pytest.mark.slow
def test_five_random_kills_lose_and_duplicate_nothing(tmp_path, twelve_trials):
    kill_and_resume(tmp_path, twelve_trials, kills=5, seed=8)


def test_a_random_kill_loses_and_duplicates_nothing(tmp_path, twelve_trials):
    kill_and_resume(tmp_path, twelve_trials, kills=1, seed=1)
