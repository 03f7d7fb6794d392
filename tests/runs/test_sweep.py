"""Sweeps on a tiny grid: rows and artifacts, a rerun that does nothing, what a rerun redoes (MLflow: test_mlflow)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys

import pytest

import wattless
from wattless.errors import ConfigError
from wattless.runs import RunsDB, load_study, run_sweep
from wattless.runs.trial import STAGING, clean_staging


def files(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def swept(tmp_path, write_study):
    """The tiny study (2 seeds, 6 trials) run once with 2 workers."""
    study = load_study(write_study(seeds=[0, 1]))
    events = []
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=2,
                       listener=lambda kind, info: events.append((kind, info)))
    return study, result, events, tmp_path


def test_a_sweep_fills_the_database_and_writes_every_artifact_and_a_second_run_does_nothing(swept):
    study, result, events, tmp_path = swept
    keys = [trial.key for trial in study.trials()]
    assert result.trials == result.ran == 6 and not result.failed and result.skipped == 0
    assert events[0] == ("start", {"study": "tiny", "planned": 6, "skipped": 0, "busy": 0, "workers": 2})
    assert [info["finished"] for kind, info in events[1:]] == [1, 2, 3, 4, 5, 6]
    with RunsDB(tmp_path / "runs.db") as runs:
        rows = runs.list(study="tiny")
        assert sorted(row["key"] for row in rows) == sorted(keys)
        for row in rows:
            assert row["status"] == "done" and row["error"] is None
            assert 0.2 < row["accuracy"] <= 1 and row["size_bytes"] > 0 and row["latency_b1_ms"] > 0
            assert row["record"]["key"] == row["key"] and row["record"]["name"] == row["recipe_name"]
            assert row["started"] <= row["finished"] and row["seconds"] > 0 and row["host"] and row["pid"]
            model = wattless.load(row["artifact"])
            assert [step["technique"] for step in model.recipe] == [next(iter(step)) for step in
                                                                    (row["recipe"] or {}).get("steps", [])]
    out = tmp_path / "out"
    assert len(list((out / "base").iterdir())) == 2 and len(list((out / "trials").iterdir())) == 4
    assert not (out / STAGING).exists()

    before = files(out)
    again = run_sweep(study, db=tmp_path / "runs.db", out=out, workers=2)
    assert again.ran == 0 and again.skipped == 6  # a second run does nothing
    assert files(out) == before


def test_a_rerun_redoes_failed_stale_and_missing_trials_only(swept):
    study, _, _, tmp_path = swept
    trials = study.trials()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with RunsDB(tmp_path / "runs.db") as runs:
        runs.upsert(trials[1].key, status="running", pid=dead.pid)  # left by a killed sweep
        runs.upsert(trials[2].key, status="failed", error="boom")
        missing = runs.get(trials[4].key)["artifact"]
    (tmp_path / "out" / "trials" / missing.rsplit("/", 1)[1]).unlink()
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=1)
    assert result.ran == 3 and result.skipped == 3
    with RunsDB(tmp_path / "runs.db") as runs:
        assert runs.counts() == {"pending": 0, "running": 0, "done": 6, "failed": 0}
        assert len(runs.list()) == 6


def test_a_failing_trial_is_recorded_and_the_rest_go_on(tmp_path, write_study):
    bad = {"name": "bad", "steps": [{"quantize.ptq": {"bits": 4, "skip": ["no-such-layer"]}}]}
    study = load_study(write_study(recipes=[bad]))
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=1)
    assert result.ran == 1 and len(result.failed) == 1
    with RunsDB(tmp_path / "runs.db") as runs:
        row = runs.get(result.failed[0])
        assert row["status"] == "failed" and row["error"].startswith("ConfigError: skip names unknown layers")
        assert row["recipe_name"] == "bad" and row["record"] is None


def test_bad_options_fail_before_any_work(tmp_path, write_study, monkeypatch):
    study = load_study(write_study())
    for options, message in (({"executor": "slurm"}, "--executor 'slurm'"), ({"workers": 0}, "--workers"),
                             ({"ray_address": "head:6379"}, "--ray-address needs --executor ray"),
                             ({"threads": 0}, "--threads-per-worker")):
        with pytest.raises(ConfigError, match=message):
            run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", **options)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    with pytest.raises(ConfigError, match="pip install mlflow"):
        run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", mlflow_uri="http://mlflow:5000")
    assert not (tmp_path / "runs.db").exists() and not (tmp_path / "out").exists()


def test_staging_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    folders = {name: tmp_path / STAGING / name for name in
               (f"{host}~{dead.pid}", f"{host}~{os.getppid()}", f"other-host~{dead.pid}")}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / ".model.wlz.1234.tmp").write_bytes(b"half a file")
    assert clean_staging(tmp_path) == 1
    assert [name for name, folder in folders.items() if folder.exists()] == [f"{host}~{os.getppid()}",
                                                                             f"other-host~{dead.pid}"]


@pytest.mark.skipif(importlib.util.find_spec("zigzag") is None, reason="ZigZag not installed (extra hw)")
def test_a_sweep_can_simulate_every_trial_on_accelerator_designs(tmp_path, write_study, monkeypatch):
    monkeypatch.setenv("WATTLESS_CACHE", str(tmp_path / "cache"))
    study = load_study(write_study(measure={"batches": [1], "repeats": 2, "engines": ["torch"],
                                            "simulate": ["edge_tpu_like"], "clock_mhz": 500}))
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=1)
    assert result.ran == 3 and not result.failed
    with RunsDB(tmp_path / "runs.db") as runs:
        records = [runs.get(key)["record"] for key in result.keys]
    weight_bits = {r["recipe_name"]: r["simulated"]["edge_tpu_like"]["layers"][0]["weight_size"] for r in records}
    assert weight_bits["ptq4"] == 4 and all(r["simulated"]["edge_tpu_like"]["latency_s"] > 0 for r in records)


def test_an_unknown_design_in_a_study_fails_before_any_work(write_study):
    with pytest.raises(ConfigError):
        load_study(write_study(measure={"engines": ["torch"], "simulate": ["no_such_design"]}))
