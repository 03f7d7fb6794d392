"""``wattless runs list|show|export`` and ``wattless sweep`` as a user types them."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from wattless.runs import RunsDB


def record(**changes):
    return {"model": "mlp", "dataset": "digits", "task": "classification", "seed": 0, "recipe": [], "accuracy": 0.9,
            "size_bytes": 2048, "compression_ratio": 4.0, "macs": 1000, "name": "ptq4",
            "energy_j_per_sample": {"value": 2e-7, "method": "estimate-45nm"},
            "latency_ms": [{"engine": "torch", "batch": 1, "threads": 1, "median": 0.02, "p25": 0.01, "p75": 0.03}],
            **changes}


@pytest.fixture
def db(tmp_path, monkeypatch):
    """A database with three runs of two studies (one failed), in the current folder."""
    monkeypatch.chdir(tmp_path)
    with RunsDB(tmp_path / "runs.db") as runs:
        runs.add(record(), key="aaaa1111", study="s1", recipe_name="ptq4")
        runs.add(record(model="lenet5", accuracy=0.8), key="bbbb2222", study="s1", recipe_name="baseline")
        runs.add_pending([{"key": "cccc3333", "study": "s2", "model": "mlp", "dataset": "digits"}])
        runs.finish("cccc3333", error="ConfigError: boom")
    return tmp_path / "runs.db"


def test_runs_list_shows_a_table_and_filters(db, wattless_cli):
    result = wattless_cli("runs", "list")
    assert result.code == 0 and "aaaa1111" in result.out and "cccc3333" in result.out and "90.00%" in result.out
    result = wattless_cli("runs", "list", "--study", "s1", "--model", "lenet5", "--json")
    assert [row["key"] for row in json.loads(result.out)["runs"]] == ["bbbb2222"]
    failed = json.loads(wattless_cli("runs", "list", "--status", "failed", "--json").out)["runs"]
    assert [row["key"] for row in failed] == ["cccc3333"] and failed[0]["error"] == "ConfigError: boom"


def test_runs_show_by_id_key_or_prefix(db, wattless_cli):
    by_key = wattless_cli("runs", "show", "aaaa1111", "--json")
    assert by_key.code == 0
    row = json.loads(by_key.out)
    assert row["id"] == 1 and row["record"]["size_bytes"] == 2048 and row["latency_b1_ms"] == 0.02
    assert json.loads(wattless_cli("runs", "show", "1", "--json").out) == row
    assert json.loads(wattless_cli("runs", "show", "aaaa11", "--json").out) == row
    table = wattless_cli("runs", "show", "aaaa1111")
    assert table.code == 0 and "aaaa1111" in table.out and "2.0 KB" in table.out


def test_runs_export_csv_and_json_to_stdout_or_a_file(db, wattless_cli, tmp_path):
    rows = list(csv.DictReader(io.StringIO(wattless_cli("runs", "export", "--csv").out)))
    assert [r["key"] for r in rows] == ["aaaa1111", "bbbb2222", "cccc3333"] and rows[2]["status"] == "failed"
    exported = json.loads(wattless_cli("runs", "export", "--json", "--study", "s1").out)
    assert [r["key"] for r in exported["runs"]] == ["aaaa1111", "bbbb2222"]
    assert exported["runs"][0]["record"]["name"] == "ptq4"
    result = wattless_cli("runs", "export", "--csv", "-o", "runs.csv")
    assert result.code == 0 and result.out == "" and (tmp_path / "runs.csv").read_text().startswith("id,key,")


@pytest.mark.parametrize("args, fragment", [
    (("runs", "list", "--db", "nope.db"), "runs database 'nope.db' not found"),
    (("runs", "show", "1", "--db", "nope.db"), "not found"),
    (("runs", "export", "--csv", "--db", "nope.db"), "not found"),
    (("runs", "show", "999"), "no run '999'"),
    (("runs", "list", "--status", "finished"), "status 'finished' unknown"),
    (("runs", "export"), "give one of --csv or --json"),
    (("runs", "export", "--csv", "--json"), "give one of --csv or --json"),
    (("runs", "export", "--csv", "-o", "runs.db"), "already exists"),
])
def test_runs_user_errors_are_one_line(db, wattless_cli, expect_user_error, args, fragment):
    expect_user_error(wattless_cli(*args), fragment)
    assert not (db.parent / "nope.db").exists()


@pytest.mark.parametrize("changes, extra, fragment", [
    ({"models": ["nonet"]}, (), "unknown model 'nonet'"),
    ({"recipes": [{"steps": [{"prune.magnitude": {"sparsity": 2}}]}]}, (), "sparsity"),
    ({}, ("--executor", "slurm"), "--executor 'slurm' unknown"),
    ({}, ("--workers", "0"), "--workers must be at least 1"),
    ({}, ("--mlflow-uri", "http://localhost:5000"), "pip install mlflow"),
])
def test_sweep_refuses_bad_input_before_any_work(tmp_path, monkeypatch, write_study, wattless_cli, expect_user_error,
                                                 changes, extra, fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    expect_user_error(wattless_cli("sweep", write_study(**changes), *extra), fragment)
    assert not (tmp_path / "runs.db").exists() and not (tmp_path / "runs").exists()
    expect_user_error(wattless_cli("sweep", tmp_path / "missing.yaml"), "study file", "not found")


def test_sweep_runs_then_resumes_with_nothing_to_do(tmp_path, monkeypatch, write_study, wattless_cli):
    monkeypatch.chdir(tmp_path)
    study = write_study()
    first = wattless_cli("sweep", study, "--workers", "1", "--json")
    assert first.code == 0, first.err
    summary = json.loads(first.out)
    assert summary["trials"] == summary["ran"] == 3 and summary["out"] == str(tmp_path / "runs" / "tiny")
    second = wattless_cli("sweep", study, "--db", "runs.db")
    assert second.code == 0 and "tiny: nothing to run, 3 trial(s) already done" in second.err
    assert "study tiny: 3 trials in runs.db" in second.out
    listed = json.loads(wattless_cli("runs", "list", "--study", "tiny", "--json").out)["runs"]
    assert sorted(row["recipe_name"] for row in listed) == ["baseline", "prune50", "ptq4"]
