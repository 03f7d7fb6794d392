"""Optional MLflow logging of sweep results, for teams that already track experiments there.

MLflow is not a dependency: ``--mlflow-uri`` needs ``pip install 'wattless[mlflow]'`` (``mlflow-skinny``; a
full ``mlflow`` works too). Any tracking URI MLflow takes works: a server (``http://...``) or a database
(``sqlite:///mlflow.db``; its artifacts go to ``./mlruns``, MLflow's default). The runs database stays the
source of truth; a logging failure is reported once and the sweep goes on. The logger uses its own
``MlflowClient``, so it changes neither the process's MLflow tracking URI nor its active run.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..errors import ConfigError

METRICS = ("accuracy", "rmse", "size_bytes", "compression_ratio", "macs", "energy_j_per_sample", "latency_b1_ms",
           "latency_b256_ms", "seconds")


class MlflowLogger:
    """One MLflow run per finished trial, in the experiment named after the study (created if missing)."""

    def __init__(self, uri: str, *, experiment: str):
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param, RunTag
        except ImportError:
            raise ConfigError("--mlflow-uri needs MLflow, which is not installed; install it with: "
                              "pip install mlflow (or 'wattless[mlflow]')") from None
        self.entities, self.warnings = (Metric, Param, RunTag), []
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # not "Creating initial tables..."
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        except Exception as exc:  # MLflow raises its own exception types for bad URIs and servers
            raise ConfigError(f"cannot use MLflow at {uri!r}: {str(exc).splitlines()[0]}") from None

    def log(self, row: dict[str, Any]) -> None:
        """Log a ``done`` row: its identity as params and tags, headline metrics, the record as an artifact."""
        if self.warnings:  # failed before: do not slow every trial down with the same error
            return
        metric, param, tag = self.entities
        params = {"model": row["model"], "dataset": row["dataset"], "seed": row["seed"],
                  "recipe": row["recipe_name"], "recipe_steps": json.dumps((row.get("recipe") or {}).get("steps", []))}
        tags = {"wattless.key": row["key"], "wattless.study": row["study"],
                "wattless.energy_method": row.get("energy_method") or "",
                "wattless.artifact": row.get("artifact") or ""}
        stamp = int(time.time() * 1000)  # ms, as MLflow wants
        try:
            run = self.client.create_run(self.experiment_id, run_name=f"{row['model']}-{row['dataset']}-"
                                         f"{row['recipe_name']}-s{row['seed']}")
            run_id = run.info.run_id
            self.client.log_batch(run_id, metrics=[metric(name, float(row[name]), stamp, 0) for name in METRICS
                                                   if row.get(name) is not None],
                                  params=[param(key, str(value)) for key, value in params.items()],
                                  tags=[tag(key, str(value)) for key, value in tags.items()])
            self.client.log_dict(run_id, row.get("record") or {}, "record.json")
            self.client.set_terminated(run_id)
        except Exception as exc:  # the database has the result; MLflow is a copy
            self.warnings.append(f"MLflow logging stopped after an error: {type(exc).__name__}: {exc}")
