"""The ``runs`` table: its migrations and columns, and its rows as Python values: encoded for writing, decoded
and checked for reading (a row another program or a damaged file left with the wrong types is refused, not
shown), and exported as CSV or JSON text."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from typing import Any


def _v1_runs_table(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT UNIQUE,                     -- the trial's hash; NULL for records added by hand
            study TEXT,
            status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
            model TEXT, dataset TEXT, task TEXT,
            recipe_name TEXT,
            recipe TEXT,                         -- JSON: the study's recipe for trials, else the record's steps
            seed INTEGER,
            accuracy REAL, rmse REAL,
            size_bytes INTEGER, compression_ratio REAL, macs INTEGER,
            energy_j_per_sample REAL, energy_method TEXT,
            latency_b1_ms REAL, latency_b256_ms REAL,   -- median of the fastest engine at batch 1 / 256
            record TEXT,                         -- JSON: the full result record
            artifact TEXT,
            started TEXT, finished TEXT,         -- ISO 8601, UTC
            seconds REAL,
            error TEXT,
            host TEXT, pid INTEGER
        )""")


def _v2_filter_indexes(conn: sqlite3.Connection) -> None:
    for column in FILTERS:
        conn.execute(f"CREATE INDEX runs_{column} ON runs ({column})")


def _v3_artifacts_and_leases(conn: sqlite3.Connection) -> None:
    for column in ("artifact_size INTEGER", "artifact_sha256 TEXT",  # the artifact as the trial left it
                   "heartbeat REAL", "lease_expires REAL"):          # Unix seconds (see leases.py)
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_runs_table, _v2_filter_indexes,
                                                          _v3_artifacts_and_leases]
"""Migration ``i`` takes a database from schema version ``i`` to ``i + 1``. Append, never edit or reorder."""

COLUMNS = ("id", "key", "study", "status", "model", "dataset", "task", "recipe_name", "recipe", "seed", "accuracy",
           "rmse", "size_bytes", "compression_ratio", "macs", "energy_j_per_sample", "energy_method",
           "latency_b1_ms", "latency_b256_ms", "record", "artifact", "started", "finished", "seconds", "error",
           "host", "pid", "artifact_size", "artifact_sha256", "heartbeat", "lease_expires")
JSON_COLUMNS = ("recipe", "record")
INTEGER_COLUMNS = ("id", "seed", "size_bytes", "macs", "pid", "artifact_size")
REAL_COLUMNS = ("accuracy", "rmse", "compression_ratio", "energy_j_per_sample", "latency_b1_ms", "latency_b256_ms",
                "seconds", "heartbeat", "lease_expires")
STATUSES = ("pending", "running", "done", "failed")
FILTERS = ("study", "status", "model", "dataset")


def headline(record: dict[str, Any]) -> dict[str, Any]:
    """The record's headline metrics as column values (``None`` where the record has no such metric)."""
    energy = record.get("energy_j_per_sample")
    energy = energy if isinstance(energy, dict) else {"value": energy, "method": None}
    columns = {name: record.get(name) for name in ("accuracy", "rmse", "size_bytes", "compression_ratio", "macs")}
    columns.update(energy_j_per_sample=energy.get("value"), energy_method=energy.get("method"))
    for batch in (1, 256):
        medians = [entry["median"] for entry in record.get("latency_ms") or []
                   if entry.get("batch") == batch and entry.get("median") is not None]
        columns[f"latency_b{batch}_ms"] = min(medians) if medians else None
    return columns


def encode(columns: dict[str, Any]) -> dict[str, Any]:
    """Column values as SQLite stores them (JSON text for the recipe and the record)."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown runs columns {sorted(unknown)}")
    return {name: json.dumps(value, default=str, sort_keys=True) if name in JSON_COLUMNS and value is not None
            else value for name, value in columns.items()}


def decode_row(row: sqlite3.Row) -> tuple[dict[str, Any], str | None]:
    """The row as a dict with its JSON decoded, and ``None``; or what makes it unreadable (a wrong type, bad
    JSON) in place of ``None``."""
    values = dict(row)
    for name, value in values.items():
        if value is None:
            continue
        if name in JSON_COLUMNS:
            if not isinstance(value, str):
                return values, f"{name} is not JSON text"
            try:
                values[name] = json.loads(value)
            except (ValueError, RecursionError):
                return values, f"{name} is not valid JSON"
            if not isinstance(values[name], dict if name == "record" else dict | list):
                return values, f"{name} is JSON of the wrong shape"
        elif name in INTEGER_COLUMNS:
            if not isinstance(value, int):
                return values, f"{name} {str(value)[:20]!r} is not a whole number"
        elif name in REAL_COLUMNS:
            if not isinstance(value, int | float):
                return values, f"{name} {str(value)[:20]!r} is not a number"
        elif not isinstance(value, str):
            return values, f"{name} is not text"
    if values.get("status") not in (None, *STATUSES):
        return values, f"status {str(values['status'])[:20]!r} unknown"
    return values, None


def export_text(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as CSV (every column but the record JSON) or JSON (``{"runs": [...]}``, records included)."""
    if fmt == "json":
        return json.dumps({"runs": rows}, default=str) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[c for c in COLUMNS if c != "record"], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "recipe": json.dumps(row["recipe"]) if row.get("recipe") is not None else None})
    return buffer.getvalue()
