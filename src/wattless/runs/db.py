"""The results database: one SQLite row per result record, safe for several writer processes at once.

The schema is versioned with ``PRAGMA user_version`` and built by an ordered list of migrations: opening
a database written by an older wattless runs the missing ones; one newer than this code is refused.
The connection uses WAL mode (readers never block the writer), a busy timeout, and write transactions
that retry on ``database is locked``. Keep the file on a local disk: WAL needs shared memory, which
network file systems do not give.

Example:
    >>> with RunsDB("runs.db") as db:                                           # doctest: +SKIP
    ...     db.add(wattless.measure("mlp.wlz", "digits"))
    ...     done = db.list(status="done")
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ..errors import WattlessError

DEFAULT_DB = "runs.db"
STATUSES = ("pending", "running", "done", "failed")
FILTERS = ("study", "status", "model", "dataset")
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 20


class RunsDBError(WattlessError):
    """The results database is missing, corrupt, or from a newer wattless."""


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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_runs_table, _v2_filter_indexes]
"""Migration ``i`` takes a database from schema version ``i`` to ``i + 1``. Append, never edit or reorder."""

COLUMNS = ("id", "key", "study", "status", "model", "dataset", "task", "recipe_name", "recipe", "seed", "accuracy",
           "rmse", "size_bytes", "compression_ratio", "macs", "energy_j_per_sample", "energy_method",
           "latency_b1_ms", "latency_b256_ms", "record", "artifact", "started", "finished", "seconds", "error",
           "host", "pid")
JSON_COLUMNS = ("recipe", "record")


def schema_version() -> int:
    """The schema version this code writes."""
    return len(MIGRATIONS)


def now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class RunsDB:
    """The ``runs`` table of a SQLite file: add records, claim and finish trials, query, export.

    Args:
        path: the database file (``runs.db``).
        create: make the file when it does not exist; otherwise a missing file is a :class:`RunsDBError`.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise RunsDBError(f"runs database {str(self.path)!r} not found; run `wattless sweep STUDY.yaml "
                              f"--db {self.path}` first, or pass --db PATH")
        if create and not self.path.parent.exists():
            raise RunsDBError(f"folder {str(self.path.parent)!r} for the runs database does not exist; create it")
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL"))
            self.conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
            self._migrate()
        except BaseException as exc:
            self.conn.close()
            if not isinstance(exc, sqlite3.DatabaseError) or _is_locked(exc):
                raise
            raise RunsDBError(f"{self.path}: not a wattless runs database ({exc})") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunsDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------------------

    def _retry(self, action: Callable[[], Any]) -> Any:
        """Run ``action``, retrying with jittered back-off while another process holds the write lock."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(min(1.0, 0.01 * 2 ** attempt) * (0.5 + random.random()))

    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction (taking the write lock up front, so two writers
        never deadlock upgrading from read to write), retried as a whole on ``database is locked``."""

        def attempt():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            return result

        return self._retry(attempt)

    def _migrate(self) -> None:
        def upgrade(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RunsDBError(f"{self.path} has schema version {version}, but this wattless knows versions up to "
                                  f"{len(MIGRATIONS)}; upgrade wattless to read it")
            for migration in MIGRATIONS[version:]:
                migration(conn)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

        current = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if current != len(MIGRATIONS):  # checked again under the write lock: another process may migrate first
            self._write(upgrade)

    @property
    def version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, record: dict[str, Any], *, key: str | None = None, study: str | None = None,
            status: str = "done", **fields: Any) -> int:
        """Store one result record (upserted by ``key`` when given); returns the row id.

        ``fields`` set other columns (``recipe_name``, ``artifact``, ``seconds``, ``started``, ...).
        """
        values = self._record_columns(record)
        values.update(study=study, status=status, **fields)
        return self.upsert(key, **values)

    def upsert(self, key: str | None, **columns: Any) -> int:
        """Insert a row, or update the row with this ``key``; only the given columns change. Returns its id."""
        columns = self._encode(columns)
        if "status" in columns and columns["status"] not in STATUSES:
            raise ValueError(f"status {columns['status']!r} is not one of {STATUSES}")

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT id FROM runs WHERE key = ?", (key,)).fetchone() if key else None
            if row is None:
                names = ["key", *columns]
                cursor = conn.execute(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                                      [key, *columns.values()])
                return cursor.lastrowid
            if columns:
                conn.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                             [*columns.values(), row["id"]])
            return row["id"]

        return self._write(work)

    def add_pending(self, trials: Iterable[dict[str, Any]]) -> int:
        """Insert a ``pending`` row for each trial (a dict of columns with ``key``) not yet in the table, in one
        transaction; returns how many were new."""
        rows = [self._encode({"status": "pending", **trial}) for trial in trials]

        def work(conn: sqlite3.Connection) -> int:
            added = 0
            for row in rows:
                names = list(row)
                cursor = conn.execute(f"INSERT OR IGNORE INTO runs ({', '.join(names)}) "
                                      f"VALUES ({', '.join('?' * len(names))})", list(row.values()))
                added += cursor.rowcount
            return added

        return self._write(work)

    def claim(self, key: str, *, host: str | None = None, pid: int | None = None) -> bool:
        """Mark trial ``key`` as ``running`` for this process, unless it is ``done`` or is running in another
        live process on this machine. A ``running`` row whose process is gone (killed) is claimed again."""
        host, pid = host or socket.gethostname(), pid or os.getpid()

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT status, host, pid FROM runs WHERE key = ?", (key,)).fetchone()
            if row is None or row["status"] == "done":
                return False
            if row["status"] == "running" and row["host"] == host and row["pid"] != pid and process_alive(row["pid"]):
                return False
            conn.execute("UPDATE runs SET status = 'running', host = ?, pid = ?, started = ?, error = NULL "
                         "WHERE key = ?", (host, pid, now(), key))
            return True

        return self._write(work)

    def finish(self, key: str, *, record: dict[str, Any] | None = None, error: str | None = None,
               **fields: Any) -> None:
        """Close trial ``key``: ``done`` with its record, or ``failed`` with the error text."""
        columns = self._record_columns(record) if record is not None else {}
        columns.update(status="failed" if error is not None else "done", error=error,
                       finished=fields.pop("finished", None) or now(), **fields)
        self.upsert(key, **columns)

    def release(self, keys: Iterable[str]) -> None:
        """Put ``running`` trials back to ``pending`` (a sweep interrupted cleanly)."""
        keys = list(keys)
        self._write(lambda conn: conn.executemany(
            "UPDATE runs SET status = 'pending' WHERE key = ? AND status = 'running'", [(k,) for k in keys]))

    @staticmethod
    def _record_columns(record: dict[str, Any]) -> dict[str, Any]:
        columns = headline(record)
        columns.update(record=record, model=record.get("model"), dataset=record.get("dataset"),
                       task=record.get("task"), seed=record.get("seed"))
        if record.get("artifact"):
            columns["artifact"] = record["artifact"]
        return columns

    @staticmethod
    def _encode(columns: dict[str, Any]) -> dict[str, Any]:
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown runs columns {sorted(unknown)}")
        return {name: json.dumps(value, default=str, sort_keys=True) if name in JSON_COLUMNS and value is not None
                else value for name, value in columns.items()}

    # -- reading -----------------------------------------------------------------------------------------

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict[str, Any]:
        values = dict(row)
        for name in JSON_COLUMNS:
            if values.get(name) is not None:
                values[name] = json.loads(values[name])
        return values

    def get(self, id_or_key: int | str) -> dict[str, Any] | None:
        """The row with this id, key, or unique key prefix (at least 6 characters); ``None`` when there is none."""
        text = str(id_or_key)
        if text.isdigit():
            row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (int(text),)).fetchone()
            if row is not None:
                return self._decode(row)
        rows = self.conn.execute("SELECT * FROM runs WHERE key = ?", (text,)).fetchall()
        if not rows and len(text) >= 6:
            rows = self.conn.execute("SELECT * FROM runs WHERE substr(key, 1, ?) = ? LIMIT 2",
                                     (len(text), text)).fetchall()
        if len(rows) > 1:
            raise RunsDBError(f"{text!r} matches several runs; give more of the key or the run id")
        return self._decode(rows[0]) if rows else None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Rows by key, for the keys that have one."""
        found: dict[str, dict[str, Any]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):  # SQLite limits the number of bound parameters
            chunk = keys[start:start + 500]
            for row in self.conn.execute(f"SELECT * FROM runs WHERE key IN ({', '.join('?' * len(chunk))})", chunk):
                found[row["key"]] = self._decode(row)
        return found

    def list(self, **filters: str | None) -> list[dict[str, Any]]:
        """Rows in id order, filtered by equality on ``study``, ``status``, ``model``, ``dataset``."""
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise ValueError(f"unknown filters {sorted(unknown)}; use {', '.join(FILTERS)}")
        given = {name: value for name, value in filters.items() if value is not None}
        if "status" in given and given["status"] not in STATUSES:
            raise RunsDBError(f"status {given['status']!r} unknown; use one of {', '.join(STATUSES)}")
        where = " AND ".join(f"{name} = ?" for name in given)
        sql = "SELECT * FROM runs" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [self._decode(row) for row in self.conn.execute(sql, list(given.values()))]

    def counts(self, **filters: str | None) -> dict[str, int]:
        """Number of rows per status."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.list(**filters):
            counts[row["status"]] += 1
        return counts

    def export(self, fmt: str, stream: TextIO | None = None, **filters: str | None) -> str:
        """The rows as CSV (every column but the record JSON) or JSON (``{"runs": [...]}``, records included).
        Written to ``stream`` when given; returned as text either way."""
        rows = self.list(**filters)
        if fmt == "json":
            text = json.dumps({"runs": rows}, default=str) + "\n"
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=[c for c in COLUMNS if c != "record"], extrasaction="ignore",
                                    lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "recipe": json.dumps(row["recipe"]) if row["recipe"] is not None else None})
            text = buffer.getvalue()
        else:
            raise RunsDBError(f"export format {fmt!r} unknown; use csv or json")
        if stream is not None:
            stream.write(text)
        return text


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, killed but not yet reaped, counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:  # "pid (name) state ...": the state follows the last ')'
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True
