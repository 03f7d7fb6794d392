"""Optional MLflow logging of sweep results, for teams that already track experiments there.

MLflow is not a dependency: ``--mlflow-uri`` needs ``pip install mlflow``. The runs database stays the
source of truth; a logging failure is reported once and the sweep goes on.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError

METRICS = ("accuracy", "rmse", "size_bytes", "compression_ratio", "macs", "energy_j_per_sample", "latency_b1_ms",
           "latency_b256_ms", "seconds")


class MlflowLogger:
    """One MLflow run per finished trial, in the experiment named after the study."""

    def __init__(self, uri: str, *, experiment: str):
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--mlflow-uri needs MLflow, which is not installed; install it with: "
                              "pip install mlflow") from None
        self.mlflow, self.warnings = mlflow, []
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(experiment)
        except Exception as exc:  # MLflow raises its own exception types for bad URIs and servers
            raise ConfigError(f"cannot use MLflow at {uri!r}: {str(exc).splitlines()[0]}") from None

    def log(self, row: dict[str, Any]) -> None:
        """Log a ``done`` row: its identity as params and tags, headline metrics, the record as an artifact."""
        if self.warnings:  # failed before: do not slow every trial down with the same error
            return
        try:
            with self.mlflow.start_run(run_name=f"{row['model']}-{row['dataset']}-{row['recipe_name']}-s{row['seed']}"):
                self.mlflow.log_params({"model": row["model"], "dataset": row["dataset"], "seed": row["seed"],
                                        "recipe": row["recipe_name"],
                                        "recipe_steps": json.dumps((row.get("recipe") or {}).get("steps", []))})
                self.mlflow.log_metrics({name: float(row[name]) for name in METRICS if row.get(name) is not None})
                self.mlflow.set_tags({"wattless.key": row["key"], "wattless.study": row["study"],
                                      "wattless.energy_method": row.get("energy_method") or "",
                                      "wattless.artifact": row.get("artifact") or ""})
                self.mlflow.log_dict(row.get("record") or {}, "record.json")
        except Exception as exc:  # the database has the result; MLflow is a copy
            self.warnings.append(f"MLflow logging stopped after an error: {type(exc).__name__}: {exc}")
