"""Fuzzing runs databases: the database of a real sweep with cells forged (any SQLite type: NULL, huge integers,
infinities, text that is not JSON, JSON of the wrong type, bytes), its schema damaged, or an unrelated SQLite file,
read by ``runs list/show/export``, ``report`` and ``sweep`` (issue 17, item 6: ``record='{bad'``, ``accuracy='abc'``
made them exit 1; ``runs list`` on another app's database added a table to it). Reading commands never change the
file, whatever it holds."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from fuzzkit import HUGE_INTS, TEXTS, TINY_STUDY, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

READERS = {
    "list": ("runs", "list", "--db", "runs.db"),
    "list-json": ("runs", "list", "--db", "runs.db", "--json", "--status", "done"),
    "show": ("runs", "show", "1", "--db", "runs.db"),
    "show-json": ("runs", "show", "2", "--db", "runs.db", "--json"),
    "export-json": ("runs", "export", "--json", "--db", "runs.db"),
    "export-csv": ("runs", "export", "--csv", "--db", "runs.db", "-o", "out.csv"),
}
REPORT = ("report", "runs.db", "-o", "report")
SWEEP = ("sweep", "s.yaml", "--db", "runs.db", "--out", "runs", "--workers", "1", "-q")
VALUES = st.one_of(
    st.none(), st.integers(-3, 3), HUGE_INTS.filter(lambda v: -(2**63) <= v < 2**63),
    st.sampled_from([float("inf"), float("-inf"), 1e308, -0.0, 0.5]),
    st.sampled_from(["{bad", "abc", "fast", "", "[]", "{}", "null", "1", '"x"', "[1, 2]", '{"latency_ms": 5}',
                     '{"record": {}}', "[" * 100_000, '{"accuracy": "high"}', "NaN", "done", "zzz", "-1"]),
    TEXTS, st.binary(max_size=16),
)
"""A forged cell: every SQLite storage class, and the texts the issue found (``{bad``, ``abc``, ``fast``)."""
DAMAGE = [
    "DROP TABLE runs", "DROP INDEX runs_status", "ALTER TABLE runs DROP COLUMN record",
    "ALTER TABLE runs RENAME COLUMN accuracy TO acc", "ALTER TABLE runs ADD COLUMN extra TEXT DEFAULT 'x'",
    "CREATE TABLE other (a)", "PRAGMA user_version = 99", "PRAGMA user_version = 1", "PRAGMA user_version = 0",
    "PRAGMA user_version = -1", "DELETE FROM runs", "PRAGMA journal_mode = DELETE",
    "INSERT INTO runs (status) VALUES ('done')", "UPDATE runs SET id = id + 100",
]
"""Schema and content damage: what an older, newer or foreign program may leave."""


def forged_db(seed: bytes, cells: list, damage: list[str]) -> bytes:
    """The seed database with ``cells`` (row, column, value) set, then the ``damage`` statements run (checks off)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.db"
        path.write_bytes(seed)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA ignore_check_constraints = ON")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
        for row, column, value in cells:
            try:
                conn.execute(f'UPDATE runs SET "{columns[column % len(columns)]}" = ? WHERE id = ?', (value, row))
            except sqlite3.Error:  # a unique key or the id's type: this forgery cannot be made; the others can
                pass
        for statement in damage:
            try:
                conn.execute(statement)
            except sqlite3.Error:
                pass
        conn.close()
        for extra in ("runs.db-wal", "runs.db-shm"):
            assert not (Path(folder) / extra).exists()
        return path.read_bytes()


def forgeries() -> st.SearchStrategy:
    cells = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 40), VALUES), max_size=4)
    return st.tuples(cells, st.lists(st.sampled_from(DAMAGE), max_size=2))


@fuzz_settings(20)
@given(reader=st.sampled_from(sorted(READERS)), forgery=forgeries())
def test_forged_database_readers(hostile, swept, reader, forgery):
    hostile(READERS[reader], {"runs.db": forged_db(swept, *forgery)})


@fuzz_settings(4)
@given(forgery=forgeries())
def test_forged_database_report(hostile, swept, forgery):
    hostile(REPORT, {"runs.db": forged_db(swept, *forgery)})


@fuzz_settings(4)
@given(forgery=forgeries())
def test_forged_database_sweep(hostile, swept, forgery):
    """A sweep resumes from any database: its forged rows are skipped, refused or run again, and the file is only
    changed by a sweep that ran (a refusal leaves it as it was)."""
    hostile(SWEEP, {"runs.db": forged_db(swept, *forgery), "s.yaml": TINY_STUDY.encode()}, inputs=["s.yaml"],
            partial="trials failed")


@pytest.mark.parametrize(("column", "value"), [("record", "{bad"), ("recipe", "{bad"), ("accuracy", "abc"),
                                               ("latency_b1_ms", "fast")])
@pytest.mark.parametrize("command", sorted(READERS) + ["report"])
def test_the_issues_bad_rows(hostile, swept, command, column, value):
    """The issue's corrupt rows, on every reading command."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.db"
        path.write_bytes(swept)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id IN (1, 2)", (value,))
        conn.close()
        data = path.read_bytes()
    hostile(REPORT if command == "report" else READERS[command], {"runs.db": data})


@pytest.mark.parametrize("command", sorted(READERS) + ["report"])
def test_another_apps_database_is_left_alone(hostile, command):
    """``runs list --db otherapp.db`` added a ``runs`` table and four indexes to it: a reading command refuses a
    database that is not wattless', and changes nothing."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE customers (name TEXT, balance REAL)")
        conn.execute("INSERT INTO customers VALUES ('ada', 12.5)")
        conn.commit()
        conn.close()
        data = path.read_bytes()
    hostile(REPORT if command == "report" else READERS[command], {"runs.db": data})
