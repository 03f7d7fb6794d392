"""The runs database: schema and migrations, writes and claims, filters, export, concurrent writers."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import threading

import pytest

from wattless.runs import db as runs_db
from wattless.runs.db import MIGRATIONS, RunsDB, RunsDBError, headline


def record(**changes):
    """A result record with the report keys the headline columns come from."""
    return {"model": "mlp", "dataset": "digits", "task": "classification", "seed": 0, "recipe": [],
            "accuracy": 0.9, "size_bytes": 1234, "compression_ratio": 2.5, "macs": 1000,
            "energy_j_per_sample": {"value": 1e-6, "method": "estimate-45nm"},
            "latency_ms": [{"engine": "torch", "batch": 1, "median": 0.02},
                           {"engine": "onnxruntime", "batch": 1, "median": 0.01},
                           {"engine": "torch", "batch": 256, "median": 0.5}], **changes}


def test_new_database_has_the_latest_schema_in_wal_mode(tmp_path):
    with RunsDB(tmp_path / "runs.db") as runs:
        assert runs.version == len(MIGRATIONS)
        assert runs.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in runs.conn.execute("PRAGMA table_info(runs)")]
        assert tuple(columns) == runs_db.COLUMNS
        indexes = {row[1] for row in runs.conn.execute("PRAGMA index_list(runs)")}
        assert {"runs_study", "runs_status", "runs_model", "runs_dataset"} <= indexes


def test_an_older_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    MIGRATIONS[0](conn)  # what the first released schema wrote
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (key, status, model, accuracy) VALUES ('k1', 'done', 'mlp', 0.5)")
    conn.commit()
    conn.close()
    with RunsDB(path) as runs:
        assert runs.version == len(MIGRATIONS)
        assert "runs_status" in {row[1] for row in runs.conn.execute("PRAGMA index_list(runs)")}
        assert runs.get("k1")["accuracy"] == 0.5


def test_migrations_run_in_order_on_an_existing_database(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    RunsDB(path).close()
    applied = []

    def v3(conn):
        applied.append(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    monkeypatch.setattr(runs_db, "MIGRATIONS", [*MIGRATIONS, v3])
    with RunsDB(path) as runs:
        assert runs.version == len(MIGRATIONS) + 1
        assert "note" in [row[1] for row in runs.conn.execute("PRAGMA table_info(runs)")]
    with RunsDB(path):
        pass
    assert applied == [len(MIGRATIONS)]  # once, from the version before it


def test_a_newer_database_is_refused_clearly(tmp_path):
    path = tmp_path / "runs.db"
    RunsDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RunsDBError, match="schema version 99.*upgrade wattless"):
        RunsDB(path)


def test_missing_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(RunsDBError, match="not found.*wattless sweep"):
        RunsDB(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RunsDBError, match="not a wattless runs database"):
        RunsDB(junk)


def test_headline_takes_the_fastest_engine_per_batch():
    columns = headline(record())
    assert columns["latency_b1_ms"] == 0.01 and columns["latency_b256_ms"] == 0.5
    assert columns["energy_j_per_sample"] == 1e-6 and columns["energy_method"] == "estimate-45nm"
    assert columns["accuracy"] == 0.9 and columns["rmse"] is None
    assert headline({"rmse": 3.0, "latency_ms": []})["latency_b1_ms"] is None


def test_add_stores_the_record_and_upserts_by_key(tmp_path):
    with RunsDB(tmp_path / "runs.db") as runs:
        first = runs.add(record(), key="abc123def", study="s", recipe_name="baseline")
        again = runs.add(record(accuracy=0.95), key="abc123def", study="s")
        plain = runs.add(record())  # no key: a new row every time
        assert first == again != plain
        row = runs.get("abc123def")
        assert row["accuracy"] == 0.95 and row["recipe_name"] == "baseline" and row["status"] == "done"
        assert row["record"]["latency_ms"][1]["engine"] == "onnxruntime"
        assert runs.get(first)["key"] == runs.get("abc123")["key"] == "abc123def"  # id, key, prefix
        assert runs.get("zzzzzzzz") is None
        assert runs.get("abc") is None  # a prefix needs at least 6 characters
        runs.add(record(), key="abc123999")
        with pytest.raises(RunsDBError, match="several runs"):
            runs.get("abc123")
        with pytest.raises(ValueError, match="unknown runs columns"):
            runs.upsert("x", colour="red")


def test_claim_and_finish_follow_the_trial_lifecycle(tmp_path):
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with RunsDB(tmp_path / "runs.db") as runs:
        assert runs.add_pending([{"key": "t1", "study": "s"}, {"key": "t2", "study": "s"}]) == 2
        assert runs.add_pending([{"key": "t1", "study": "s"}]) == 0
        assert runs.claim("t1", host=host, pid=os.getppid())  # held by a live process ...
        assert not runs.claim("t1")  # ... so this one leaves it
        runs.upsert("t2", status="running", host=host, pid=dead.pid)
        assert runs.claim("t2")  # its process is gone: claimed again
        assert runs.get("t2")["pid"] == os.getpid()
        runs.finish("t1", record=record(), artifact="/x/t1.wlz", seconds=1.5)
        runs.finish("t2", error="ConfigError: boom")
        assert not runs.claim("t1")  # done
        assert runs.get("t1")["status"] == "done" and runs.get("t1")["artifact"] == "/x/t1.wlz"
        assert runs.get("t2")["status"] == "failed" and runs.get("t2")["error"] == "ConfigError: boom"
        assert runs.claim("t2")  # failed trials run again
        assert not runs.claim("unknown")
        runs.release(["t2"])
        assert runs.get("t2")["status"] == "pending"


def test_list_filters_and_counts(tmp_path):
    with RunsDB(tmp_path / "runs.db") as runs:
        runs.add(record(), key="a", study="s1")
        runs.add(record(model="lenet5"), key="b", study="s1")
        runs.add(record(dataset="mnist"), key="c", study="s2", status="failed")
        assert [r["key"] for r in runs.list()] == ["a", "b", "c"]
        assert [r["key"] for r in runs.list(study="s1")] == ["a", "b"]
        assert [r["key"] for r in runs.list(model="lenet5")] == ["b"]
        assert [r["key"] for r in runs.list(dataset="mnist", status="failed")] == ["c"]
        assert runs.counts(study="s1") == {"pending": 0, "running": 0, "done": 2, "failed": 0}
        with pytest.raises(RunsDBError, match="status 'finished' unknown"):
            runs.list(status="finished")


def test_export_csv_and_json(tmp_path):
    with RunsDB(tmp_path / "runs.db") as runs:
        runs.add(record(), key="a", study="s1", recipe={"name": "ptq4", "steps": [{"quantize.ptq": {"bits": 4}}]})
        runs.add(record(accuracy=None, rmse=2.0), key="b", study="s2")
        rows = list(csv.DictReader(io.StringIO(runs.export("csv"))))
        assert [r["key"] for r in rows] == ["a", "b"] and "record" not in rows[0]
        assert float(rows[0]["accuracy"]) == 0.9 and rows[1]["accuracy"] == "" and float(rows[1]["rmse"]) == 2.0
        assert json.loads(rows[0]["recipe"])["steps"][0]["quantize.ptq"]["bits"] == 4
        stream = io.StringIO()
        data = json.loads(runs.export("json", stream, study="s1"))
        assert stream.getvalue() and [r["key"] for r in data["runs"]] == ["a"]
        assert data["runs"][0]["record"]["size_bytes"] == 1234
        with pytest.raises(RunsDBError, match="csv or json"):
            runs.export("xml")


def write_many(path, name: str, count: int, barrier) -> None:
    """One writer process: opens (and maybe creates) the database, then writes as fast as it can."""
    barrier.wait()  # every writer starts at once
    with RunsDB(path) as runs:
        for i in range(count):
            runs.add({"model": "mlp", "dataset": "digits", "accuracy": i / count}, key=f"{name}-{i}", study=name)
            runs.upsert("shared", study="shared", status="done", seed=i)
            runs.add_pending([{"key": f"{name}-pending-{i}", "study": "p"}])
            assert runs.claim(f"{name}-pending-{i}")


def test_several_processes_write_at_once(tmp_path):
    """Forked writers (no re-import) create, migrate and fill one file together; nothing is lost."""
    path, writers, count = tmp_path / "runs.db", 4, 100
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers)
    procs = [context.Process(target=write_many, args=(path, f"w{n}", count, barrier)) for n in range(writers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * writers
    with RunsDB(path) as runs:
        for n in range(writers):
            rows = runs.list(study=f"w{n}")
            assert sorted(r["key"] for r in rows) == sorted(f"w{n}-{i}" for i in range(count))
        assert len(runs.list(study="shared")) == 1
        assert runs.counts(study="p") == {"pending": 0, "running": writers * count, "done": 0, "failed": 0}
        assert len(runs.list()) == 2 * writers * count + 1
        assert runs.version == len(MIGRATIONS)


def test_writes_retry_while_another_process_holds_the_lock(tmp_path, monkeypatch):
    """With the busy timeout cut to 1 ms, ``database is locked`` reaches our retry loop, which waits it out."""
    path = tmp_path / "runs.db"
    RunsDB(path).close()
    monkeypatch.setattr(runs_db, "BUSY_TIMEOUT_MS", 1)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    timer = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    timer.start()
    try:
        with RunsDB(path) as runs:
            runs.add(record(), key="late")
            assert runs.get("late")["status"] == "done"
    finally:
        timer.join()
        holder.close()
