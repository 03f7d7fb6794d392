"""A sweep logged to a real MLflow tracking store (SQLite, in the test's folder) and read back through MLflow's
own client: one run per trial, with the database's params, metrics, tags and record."""

from __future__ import annotations

import os

import pytest

from wattless.errors import ConfigError
from wattless.runs import RunsDB, load_study, run_sweep
from wattless.runs.mlflow_log import METRICS

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*")  # SQLAlchemy, in MLflow's store


def test_a_sweep_logged_to_mlflow_reads_back_the_same_as_the_runs_database(tmp_path, write_study, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = os.environ.get("MLFLOW_TRACKING_URI")
    study = load_study(write_study())  # baseline, ptq4, prune50
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=1, mlflow_uri=uri)
    assert result.ran == 3 and not result.warnings, result
    assert os.environ.get("MLFLOW_TRACKING_URI") == before  # the process's MLflow settings are left alone

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = {run.data.tags["wattless.key"]: run for run in client.search_runs([experiment.experiment_id])}
    with RunsDB(tmp_path / "runs.db") as db:
        rows = {row["key"]: row for row in db.list(study="tiny")}
    assert sorted(runs) == sorted(rows) == sorted(t.key for t in study.trials())
    for key, row in rows.items():
        run = runs[key]
        assert run.info.status == "FINISHED"
        assert run.data.params == {"model": row["model"], "dataset": row["dataset"], "seed": str(row["seed"]),
                                   "recipe": row["recipe_name"], "recipe_steps": run.data.params["recipe_steps"]}
        assert run.data.metrics == {name: float(row[name]) for name in METRICS if row.get(name) is not None}
        assert run.data.metrics["accuracy"] > 0.2 and "latency_b1_ms" in run.data.metrics
        assert run.data.tags["wattless.artifact"] == row["artifact"]
        record = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/record.json")
        assert record == row["record"]

    again = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=1, mlflow_uri=uri)
    assert again.ran == 0 and len(client.search_runs([experiment.experiment_id])) == 3  # nothing logged twice


def test_an_unusable_tracking_uri_is_one_error_before_any_work(tmp_path, write_study):
    study = load_study(write_study())
    with pytest.raises(ConfigError, match="cannot use MLflow at 'nosuch://x'"):
        run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", mlflow_uri="nosuch://x")
    assert not (tmp_path / "runs.db").exists() and not (tmp_path / "out").exists()
