"""The results database: one SQLite row per result record, safe for several writer processes at once.

The schema is versioned with ``PRAGMA user_version`` and built by an ordered list of migrations: opening
a database written by an older wattless runs the missing ones; one newer than this code is refused, and so
is another program's SQLite file (left unchanged). Opened read-only (``create=False``: ``runs list``,
``report``), the file is never created, migrated or written. Rows with ill-typed values or bad JSON are
skipped by reads and named in one warning line.
The connection uses WAL mode (readers never block the writer), a busy timeout, and write transactions
that retry on ``database is locked``. Keep the file on a local disk: WAL needs shared memory, which
network file systems do not give.

Example:
    >>> with RunsDB("runs.db") as db:                                           # doctest: +SKIP
    ...     db.add(wattless.measure("mlp.wlz", "digits"))
    ...     done = db.list(status="done")
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from ..errors import WattlessError
from .leases import claim_row, host_name, lease_seconds, process_alive, renew  # noqa: F401  (trial.py's import)
from .rows import (  # noqa: F401  (COLUMNS, JSON_COLUMNS, headline: imported from here too)
    COLUMNS,
    FILTERS,
    JSON_COLUMNS,
    MIGRATIONS,
    STATUSES,
    decode_row,
    encode,
    export_text,
    headline,
)

DEFAULT_DB = "runs.db"
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 20


class RunsDBError(WattlessError):
    """The results database is missing, corrupt, not ours, or from a newer wattless."""


REQUIRED = {"id", "key", "study", "status", "recipe", "record", "artifact", "host", "pid"}
"""Columns every version of our ``runs`` table has: a table without them belongs to another program."""


def schema_version() -> int:
    """The schema version this code writes."""
    return len(MIGRATIONS)


def now() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class RunsDB:
    """The ``runs`` table of a SQLite file: add records, claim and finish trials, query, export.

    Args:
        path: the database file (``runs.db``).
        create: make (or migrate) the file when needed; ``False`` opens an existing database read-only and
            never changes it (a missing, empty or foreign file is a :class:`RunsDBError`).
        warn: called with one line naming the rows that reads skip as unreadable (default: a ``warning:``
            line on stderr); each row is named once.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, *, create: bool = True,
                 warn: Callable[[str], None] | None = None):
        self.path, self.readonly = Path(path), not create
        self.warn = warn or (lambda text: sys.stderr.write(f"warning: {text}\n"))
        self.skipped: dict[int, tuple[Any, str]] = {}  # unreadable rows seen so far: id -> (key, why)
        if self.path.exists() and not self.path.is_file():
            raise RunsDBError(f"runs database {str(self.path)!r} is a folder, not a file; pass --db FILE")
        if not create and not self.path.is_file():
            raise RunsDBError(f"runs database {str(self.path)!r} not found; run `wattless sweep STUDY.yaml "
                              f"--db {self.path}` first, or pass --db PATH")
        if create and not self.path.parent.exists():
            raise RunsDBError(f"folder {str(self.path.parent)!r} for the runs database does not exist; create it")
        self.conn = self._connect()
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._check_ours()  # before anything that could write to the file
            if self.readonly:
                self.conn.execute("PRAGMA query_only = ON")
            else:
                self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL"))
                self.conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
                self._migrate()
                self._check_columns()
        except BaseException as exc:
            self.conn.close()
            if not isinstance(exc, sqlite3.DatabaseError) or _is_locked(exc):
                raise
            raise self._damaged(exc) from None

    def _connect(self) -> sqlite3.Connection:
        """A connection; read-only use never creates the file (``mode=rw``: a writable connection still removes the
        WAL files it opened on close) and takes a read-only file as it is (``mode=ro``)."""
        if not self.readonly:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        for mode in ("rw", "ro"):
            try:
                return sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode={mode}", uri=True,
                                       timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            except sqlite3.Error as exc:
                problem = exc
        raise RunsDBError(f"cannot open runs database {str(self.path)!r}: {problem}") from None

    def _damaged(self, exc: sqlite3.DatabaseError) -> RunsDBError:
        """The error for a file SQLite cannot read: not a database at all, or a damaged one."""
        if "not a database" in str(exc):
            return RunsDBError(f"{str(self.path)!r} is not a wattless runs database (not SQLite); pass the runs "
                               "database that `wattless sweep` or `wattless search` wrote")
        return RunsDBError(f"runs database {str(self.path)!r} is damaged ({exc}); restore it from a backup or pass "
                           "another --db")

    def _check_ours(self) -> None:
        """Refuse another program's SQLite file, a newer schema, a damaged file and (read-only) an empty one."""
        self.conn.execute("BEGIN")  # one snapshot: another process may create or migrate the file meanwhile
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            objects = [row[0] for row in self.conn.execute("SELECT name FROM sqlite_master")]
            columns = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
        finally:
            self.conn.execute("COMMIT")
        if (columns and (version == 0 or not REQUIRED <= columns)) or (not columns and (objects or version)):
            raise RunsDBError(f"{str(self.path)!r} is a SQLite database of another program (no wattless runs "
                              "table), left unchanged; pass the runs database of `wattless sweep` or `search`")
        if version > len(MIGRATIONS):
            raise RunsDBError(f"{self.path} has schema version {version}, but this wattless knows versions up to "
                              f"{len(MIGRATIONS)}; upgrade wattless to read it")
        if self.readonly and not columns:
            raise RunsDBError(f"runs database {str(self.path)!r} is empty; run `wattless sweep STUDY.yaml --db "
                              f"{self.path}` first, or pass --db PATH")
        problem = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]  # a cut-off file: before writing to it
        if problem != "ok":
            raise self._damaged(sqlite3.DatabaseError(problem[:200]))
        if version == len(MIGRATIONS):
            self._check_columns()

    def _check_columns(self) -> None:
        """Refuse a current-version table lacking columns (edited elsewhere): a write would fail half-way."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(runs)")}
        if columns and (missing := [name for name in COLUMNS if name not in columns]):
            raise RunsDBError(f"runs database {str(self.path)!r} lacks the column(s) {', '.join(missing[:5])} of its "
                              "schema version (changed outside wattless); restore a backup or pass another --db")

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

        try:
            return self._retry(attempt)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # not a damaged file (a constraint, a lock held too long)
                raise
            raise self._damaged(exc) from None

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
        columns = encode(columns)
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
        rows = [encode({"status": "pending", **trial}) for trial in trials]

        def work(conn: sqlite3.Connection) -> int:
            added = 0
            for row in rows:
                names = list(row)
                cursor = conn.execute(f"INSERT OR IGNORE INTO runs ({', '.join(names)}) "
                                      f"VALUES ({', '.join('?' * len(names))})", list(row.values()))
                added += cursor.rowcount
            return added

        return self._write(work)

    def claim(self, key: str, *, host: str | None = None, pid: int | None = None, lease_s: float | None = None,
              retry_failed: bool = True) -> bool:
        """Mark trial ``key`` as ``running`` for this process under a lease of ``lease_s`` seconds, unless it is
        ``done`` or another live process holds it (see :mod:`wattless.runs.leases`); returns whether it did."""
        host, pid = host or host_name(), pid or os.getpid()
        lease_s = lease_s or lease_seconds()
        return self._write(lambda conn: claim_row(conn, key, host, pid, now(), lease_s, retry_failed))

    def renew(self, keys: Iterable[str], *, host: str | None = None, pid: int | None = None,
              lease_s: float | None = None) -> None:
        """The heartbeat: extend the leases of the trials of ``keys`` that this process still holds."""
        keys = list(keys)
        if keys:
            self._write(lambda conn: renew(conn, keys, host or host_name(), pid or os.getpid(),
                                           lease_s or lease_seconds()))

    def finish(self, key: str, *, record: dict[str, Any] | None = None, error: str | None = None,
               **fields: Any) -> None:
        """Close trial ``key``: ``done`` with its record, or ``failed`` with the error text."""
        columns = self._record_columns(record) if record is not None else {}
        columns.update(status="failed" if error is not None else "done", error=error,
                       finished=fields.pop("finished", None) or now(), **fields)
        self.upsert(key, **columns)

    def reopen(self, keys: Iterable[str]) -> None:
        """Put ``done`` trials back to ``pending`` (their artifact is gone or changed, or their row unreadable)."""
        keys = list(keys)
        self._write(lambda conn: conn.executemany(
            "UPDATE runs SET status = 'pending' WHERE key = ? AND status = 'done'", [(k,) for k in keys]))

    def release(self, keys: Iterable[str]) -> None:
        """Put ``running`` trials back to ``pending`` (a sweep interrupted cleanly)."""
        keys = list(keys)
        self._write(lambda conn: conn.executemany(
            "UPDATE runs SET status = 'pending', lease_expires = NULL WHERE key = ? AND status = 'running'",
            [(k,) for k in keys]))

    @staticmethod
    def _record_columns(record: dict[str, Any]) -> dict[str, Any]:
        columns = headline(record)
        columns.update(record=record, model=record.get("model"), dataset=record.get("dataset"),
                       task=record.get("task"), seed=record.get("seed"))
        if record.get("artifact"):
            columns["artifact"] = record["artifact"]
        return columns

    # -- reading -----------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """The raw rows of a read; SQLite's errors (a damaged file, a lock held too long) as RunsDBError."""
        try:
            return self.conn.execute(sql, list(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            if _is_locked(exc):
                raise RunsDBError(f"runs database {str(self.path)!r} stayed locked by another process for "
                                  f"{BUSY_TIMEOUT_MS // 1000} s; try again") from None
            raise self._damaged(exc) from None

    def _select(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """The decoded rows of a query; unreadable rows are left out and reported once through ``warn``."""
        rows, bad = [], {}
        for row in self._query(sql, params):
            decoded, problem = decode_row(row)
            if problem is None:
                rows.append(decoded)
            elif row["id"] not in self.skipped:
                bad[row["id"]] = (row["key"] if "key" in row.keys() else None, problem)
        if bad:
            self.skipped.update(bad)
            ids = ", ".join(map(str, sorted(bad)[:20])) + (", ..." if len(bad) > 20 else "")
            self.warn(f"skipped {len(bad)} unreadable row(s) of {self.path} (id {ids}): {next(iter(bad.values()))[1]}")
        return rows

    def get(self, id_or_key: int | str) -> dict[str, Any] | None:
        """The row with this id, key, or unique key prefix (at least 6 characters); ``None`` when there is none."""
        text = str(id_or_key)
        rows = self._query("SELECT * FROM runs WHERE id = ?", (int(text),)) if text.isdigit() and len(text) < 19 else []
        rows = rows or self._query("SELECT * FROM runs WHERE key = ?", (text,))
        if not rows and len(text) >= 6:
            rows = self._query("SELECT * FROM runs WHERE substr(key, 1, ?) = ? LIMIT 2", (len(text), text))
        if len(rows) > 1:
            raise RunsDBError(f"{text[:80]!r} matches several runs; give more of the key or the run id")
        if not rows:
            return None
        row, problem = decode_row(rows[0])
        if problem is not None:
            raise RunsDBError(f"run {rows[0]['id']} of {self.path} is unreadable: {problem}")
        return row

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Rows by key, for the keys that have one."""
        found: dict[str, dict[str, Any]] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):  # SQLite limits the number of bound parameters
            chunk = keys[start:start + 500]
            for row in self._select(f"SELECT * FROM runs WHERE key IN ({', '.join('?' * len(chunk))})", chunk):
                found[row["key"]] = row
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
        return self._select(sql, given.values())

    def counts(self, **filters: str | None) -> dict[str, int]:
        """Number of rows per status."""
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.list(**filters):
            counts[row["status"]] += 1
        return counts

    def export(self, fmt: str, stream: TextIO | None = None, **filters: str | None) -> str:
        """The rows as CSV (every column but the record JSON) or JSON (``{"runs": [...]}``, records included).
        Written to ``stream`` when given; returned as text either way."""
        if fmt not in ("csv", "json"):
            raise RunsDBError(f"export format {str(fmt)[:20]!r} unknown; use csv or json")
        text = export_text(self.list(**filters), fmt)
        if stream is not None:
            stream.write(text)
        return text
