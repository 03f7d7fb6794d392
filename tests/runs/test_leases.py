"""Trial leases and artifact checks: a trial another host holds is left alone until its lease expires, then
taken over; a resumed sweep reruns a trial whose artifact changed or whose row is unreadable."""

from __future__ import annotations

import time

import pytest

import wattless
from wattless.errors import ConfigError
from wattless.runs import RunsDB, load_study, run_sweep
from wattless.runs.leases import host_name, lease_seconds
from wattless.runs.resume import Leases


def test_another_hosts_trial_is_taken_over_only_once_its_lease_expires(tmp_path):
    with RunsDB(tmp_path / "runs.db") as runs:
        runs.add_pending([{"key": "t1", "study": "s"}])
        assert runs.claim("t1", host="host-a", pid=1, lease_s=0.3)
        assert not runs.claim("t1", host="host-b", pid=2, lease_s=0.3)  # held
        row = runs.get("t1")
        assert row["host"] == "host-a" and row["lease_expires"] - row["heartbeat"] == pytest.approx(0.3)
        time.sleep(0.2)
        runs.renew(["t1"], host="host-a", pid=1, lease_s=0.3)  # the heartbeat keeps it
        time.sleep(0.2)
        assert not runs.claim("t1", host="host-b", pid=2, lease_s=0.3)
        time.sleep(0.35)  # host-a stopped renewing: its lease expires
        assert runs.claim("t1", host="host-b", pid=2, lease_s=0.3)
        runs.renew(["t1"], host="host-a", pid=1, lease_s=5)  # a late heartbeat of the old owner changes nothing
        assert runs.get("t1")["host"] == "host-b" and runs.get("t1")["lease_expires"] < time.time() + 1
        runs.finish("t1", error="boom")
        assert not runs.claim("t1", host="host-a", pid=1, retry_failed=False)  # ended by its holder


def test_a_sweeps_heartbeat_keeps_its_trials_until_it_stops(tmp_path, write_study, monkeypatch):
    monkeypatch.setenv("WATTLESS_HOST", "host-a")
    monkeypatch.setenv("WATTLESS_LEASE_SECONDS", "0.4")
    trial = load_study(write_study(), check_data=False).trials()[0]
    with RunsDB(tmp_path / "runs.db") as runs:
        runs.add_pending([trial.columns()])
        leases = Leases(runs)
        try:
            assert leases.claim(trial)
            time.sleep(1.0)  # more than two lease lengths: the heartbeat thread renews it
            assert not runs.claim(trial.key, host="host-b", pid=2, lease_s=0.4)
        finally:
            leases.close()
        time.sleep(0.5)
        assert runs.claim(trial.key, host="host-b", pid=2, lease_s=0.4)  # no heartbeat: taken over


def test_the_host_and_the_lease_length_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("WATTLESS_HOST", "node-7")
    monkeypatch.setenv("WATTLESS_LEASE_SECONDS", "2.5")
    assert host_name() == "node-7" and lease_seconds() == 2.5
    for bad in ("0", "soon", "nan", "1e9"):
        monkeypatch.setenv("WATTLESS_LEASE_SECONDS", bad)
        with pytest.raises(ConfigError, match="WATTLESS_LEASE_SECONDS"):
            lease_seconds()


def test_a_resume_reruns_trials_whose_artifact_changed_or_whose_row_is_unreadable(tmp_path, write_study):
    study = load_study(write_study())
    db, out = tmp_path / "runs.db", tmp_path / "out"
    run_sweep(study, db=db, out=out, workers=1)
    baseline, ptq4, prune50 = study.trials()
    with RunsDB(db) as runs:
        rows = {trial.recipe_name: runs.get(trial.key) for trial in study.trials()}
        assert all(row["artifact_size"] > 0 and len(row["artifact_sha256"]) == 64 for row in rows.values())
        runs.conn.execute("UPDATE runs SET record = '{bad' WHERE key = ?", (prune50.key,))
    truncated = rows["ptq4"]["artifact"]
    with open(truncated, "r+b") as file:  # a kill or a full disk cut it short
        file.truncate(rows["ptq4"]["artifact_size"] // 2)
    flipped = bytearray(open(rows["baseline"]["artifact"], "rb").read())
    flipped[len(flipped) // 2] ^= 0xFF  # same size, other bytes
    open(rows["baseline"]["artifact"], "wb").write(bytes(flipped))

    again = run_sweep(study, db=db, out=out, workers=1)
    assert again.ran == 3 and again.skipped == 0 and not again.failed
    warnings = "\n".join(again.warnings)
    assert "not the" in warnings and "SHA-256 differs" in warnings and "unreadable row" in warnings
    with RunsDB(db) as runs:
        for trial in study.trials():
            row = runs.get(trial.key)
            assert row["status"] == "done" and row["artifact_size"] == len(open(row["artifact"], "rb").read())
            wattless.load(row["artifact"])
    assert run_sweep(study, db=db, out=out, workers=1).skipped == 3  # and then nothing to do
