"""Sweeps as Ray tasks: on a local Ray instance (slow), and on a simulated cluster of three nodes on this
machine (a head without CPUs, two worker nodes of one CPU each) that loses a worker node mid-sweep, and
whose driver is killed and started again. Ray's start-up is slow: one cluster for the module."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wattless
from wattless.runs import RunsDB, load_study, run_sweep

ray = pytest.importorskip("ray")
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_instance_fills_the_same_database(tmp_path, write_study):
    recipes = [{"name": "ptq4", "steps": [{"quantize.ptq": {"bits": 4}}]},
               {"name": "int8", "steps": ["quantize.int8"]}]  # an ONNX artifact too
    study = load_study(write_study(seeds=[0, 1], recipes=recipes))
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=2, executor="ray")
    assert result.ran == 6 and not result.failed, result
    assert not ray.is_initialized()  # the local instance we started is shut down
    with RunsDB(tmp_path / "runs.db") as runs:
        rows = runs.list(study="tiny")
        assert sorted(r["key"] for r in rows) == sorted(t.key for t in study.trials())
        assert {r["status"] for r in rows} == {"done"}
        assert all(r["accuracy"] > 0.2 and r["host"] for r in rows)
        for row in rows:
            if row["artifact"].endswith(".onnx"):
                assert row["record"]["precision"] == "int8"
            else:
                wattless.load(row["artifact"])
    again = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", executor="ray")
    assert again.ran == 0 and again.skipped == 6


@pytest.fixture(scope="module")
def cluster():
    """Head (no CPUs, so every job runs on a worker node) + two worker nodes; this process is its driver."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as patch:  # every node and driver on the loopback address, not eth0's
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read at import by the driver subprocess
        patch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
        simulated = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 0, "include_dashboard": False})
        try:
            for _ in range(2):
                simulated.add_node(**NODE)
            ray.init(address=simulated.address, logging_level="WARNING", log_to_driver=False)
            simulated.wait_for_nodes()
            yield simulated
        finally:
            ray.shutdown()
            simulated.shutdown()


def running_a_trial(node) -> bool:
    """A Ray worker of ``node`` (a child of its raylet) is running a sweep job (its title: ``ray::execute``)."""
    raylets = {info.process.pid for info in node.all_processes.get("raylet", [])}
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent in raylets and (entry / "cmdline").read_bytes().startswith(b"ray::execute"):
                return True
        except (OSError, ValueError, IndexError):  # not a process, or one that ended while we looked
            continue
    return False


def check_rows(db: Path, study) -> None:
    """One ``done`` row per trial of the grid, each artifact whole."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, status, artifact FROM runs WHERE study = ?", (study.name,)).fetchall()
    assert sorted(key for key, _, _ in rows) == sorted(t.key for t in study.trials())  # 0 lost, 0 duplicated
    assert {status for _, status, _ in rows} == {"done"}
    for _, _, artifact in rows:
        wattless.load(artifact)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the busy node in /proc")
def test_a_worker_node_lost_mid_sweep_costs_nothing(cluster, tmp_path, write_study):
    study = load_study(write_study())  # a base model, then 3 trials, one on each worker node at a time
    first_trial, stop, killed = threading.Event(), threading.Event(), []

    def kill_a_busy_node():
        """Once a trial has finished, remove the first worker node seen running a job (lost with the node)."""
        first_trial.wait()
        while not killed and not stop.is_set():
            busy = [node for node in cluster.worker_nodes if running_a_trial(node)]
            if busy:
                cluster.remove_node(busy[0])
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_node, daemon=True)
    killer.start()
    try:
        result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", executor="ray",
                           listener=lambda kind, info: kind == "trial" and first_trial.set())
    finally:
        stop.set()
        first_trial.set()
        killer.join()
    assert killed and len(cluster.worker_nodes) == 1  # the rest ran on the other one
    assert result.ran == 3 and not result.failed, result
    assert any("the worker was lost" in w and w.endswith("ran it again") for w in result.warnings), result.warnings
    check_rows(tmp_path / "runs.db", study)


def test_a_killed_driver_is_resumed_from_the_database_by_the_next(cluster, tmp_path, write_study):
    study_path = write_study()
    db, out = tmp_path / "runs.db", tmp_path / "out"
    command = [sys.executable, "-c", "from wattless.cli import main; main()", "sweep", str(study_path), "--db",
               str(db), "--out", str(out), "--executor", "ray", "--ray-address", cluster.address, "--quiet"]
    driver = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while driver.poll() is None and time.monotonic() < deadline and done_rows(db) < 1:
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read().decode()
    finally:
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone: Ray ends its tasks
        driver.wait()
        driver.stderr.close()
    study = load_study(study_path)
    first = done_rows(db)
    again = run_sweep(study, db=db, out=out, executor="ray")
    assert again.skipped == first >= 1 and again.ran == 3 - first and not again.failed, again
    check_rows(db, study)


def done_rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
    except sqlite3.OperationalError:  # not there yet, or not yet migrated
        return 0
