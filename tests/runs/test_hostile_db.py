"""Damaged and foreign runs databases: bad rows are skipped and named, other files refused and left unchanged,
and read-only commands never create or migrate a database."""

from __future__ import annotations

import sqlite3

import pytest

from wattless.runs import RunsDB
from wattless.runs.db import MIGRATIONS

READERS = [("runs", "list"), ("runs", "show", "1"), ("runs", "export", "--csv"), ("runs", "export", "--json"),
           ("report",)]


def record(**changes):
    return {"model": "mlp", "dataset": "digits", "task": "classification", "seed": 0, "recipe": [], "accuracy": 0.9,
            "size_bytes": 2048, "compression_ratio": 4.0, "macs": 1000, "name": "ptq4",
            "energy_j_per_sample": {"value": 2e-7, "method": "estimate-45nm"},
            "latency_ms": [{"engine": "torch", "batch": 1, "threads": 1, "median": 0.02, "p25": 0.01, "p75": 0.03}],
            **changes}


def read_command(args, db, tmp_path):
    return [*args, db, "-o", tmp_path / "report.html"] if args == ("report",) else [*args, "--db", db]


def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


@pytest.mark.parametrize("column, value", [("record", "{bad"), ("recipe", "{bad"), ("accuracy", "abc"),
                                           ("latency_b1_ms", "fast"), ("record", "[1, 2]"), ("seed", 1.5)])
def test_a_bad_row_is_skipped_and_named_by_id(tmp_path, wattless_cli, column, value):
    db = tmp_path / "runs.db"
    with RunsDB(db) as runs:
        for key in ("k1", "k2", "k3"):
            runs.add(record(), key=key, study="s", recipe={"name": "r", "steps": []})
        runs.conn.execute(f"UPDATE runs SET {column} = ? WHERE id = 2", (value,))
    for args in [("runs", "list"), ("runs", "export", "--csv"), ("runs", "export", "--json"), ("report",)]:
        code, out, err = wattless_cli(*read_command(args, db, tmp_path))
        assert code == 0, err
        warnings = [line for line in err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "(id 2)" in warnings[0] and column in warnings[0], err
        assert "Traceback" not in err
    assert wattless_cli("runs", "list", "--json", "--db", db).json()["runs"][1]["id"] == 3
    shown = wattless_cli("runs", "show", "2", "--db", db)
    assert shown.code == 2 and shown.err.count("\n") == 1 and "run 2" in shown.err and column in shown.err


@pytest.fixture
def foreign(tmp_path):
    """Another program's SQLite database, in rollback-journal mode."""
    path = tmp_path / "otherapp.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("args", READERS)
def test_another_programs_database_is_refused_and_left_unchanged(foreign, tmp_path, wattless_cli, expect_user_error,
                                                                 args):
    before = snapshot(tmp_path)
    expect_user_error(wattless_cli(*read_command(args, foreign, tmp_path)), "another program", "left unchanged")
    assert snapshot(tmp_path) == before


def test_a_sweep_refuses_another_programs_database_too(foreign, tmp_path, write_study, wattless_cli,
                                                       expect_user_error):
    study = write_study()
    before = snapshot(tmp_path)
    expect_user_error(wattless_cli("sweep", study, "--db", foreign, "--out", tmp_path / "out", "--quiet"),
                      "another program")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_foreign_runs_table_is_not_ours(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, started TEXT)")  # a CI tool's table, say
    conn.close()
    for create in (True, False):
        with pytest.raises(Exception, match="another program"):
            RunsDB(path, create=create)


def test_a_table_missing_a_column_of_its_version_is_refused_before_any_write(tmp_path):
    path = tmp_path / "edited.db"
    with RunsDB(path) as runs:
        runs.add(record(), key="k0")
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE runs RENAME COLUMN accuracy TO acc")  # found by make fuzz: a sweep then crashed
    conn.close()
    before = path.read_bytes()
    for create in (True, False):
        with pytest.raises(Exception, match="lacks the column.s. accuracy"):
            RunsDB(path, create=create)
    assert path.read_bytes() == before


def damaged_files(folder):
    """name -> a file every reader must refuse."""
    good = folder / "good.db"
    with RunsDB(good) as runs:
        for i in range(200):
            runs.add(record(model="mlp" * 50), key=f"k{i}")
    newer = folder / "newer.db"
    newer.write_bytes(good.read_bytes())
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    files = {"not-sqlite.db": b"this is not a database\n" * 50, "truncated.db": good.read_bytes()[:20000],
             "empty.db": b""}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    good.unlink()
    return {"not SQLite": folder / "not-sqlite.db", "damaged": folder / "truncated.db", "empty": folder / "empty.db",
            "upgrade wattless": newer}


@pytest.mark.parametrize("args", READERS)
def test_damaged_newer_empty_and_missing_files_are_one_error_and_left_unchanged(tmp_path, wattless_cli,
                                                                               expect_user_error, args):
    files = tmp_path / "files"
    files.mkdir()
    cases = damaged_files(files)
    before = snapshot(files)
    for fragment, path in cases.items():
        expect_user_error(wattless_cli(*read_command(args, path, tmp_path)), fragment)
    missing = "does not exist" if args == ("report",) else "not found"
    expect_user_error(wattless_cli(*read_command(args, files / "missing.db", tmp_path)), missing)
    assert snapshot(files) == before  # nothing created, migrated or written


def test_read_only_commands_do_not_migrate_an_older_database(tmp_path, wattless_cli):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (key, status, model, accuracy) VALUES ('k1', 'done', 'mlp', 0.5)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    rows = wattless_cli("runs", "list", "--json", "--db", path).json()["runs"]
    assert [row["accuracy"] for row in rows] == [0.5]
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["old.db"]


def test_a_sweep_refuses_damaged_and_newer_databases_and_leaves_them_unchanged(tmp_path, write_study, wattless_cli,
                                                                               expect_user_error):
    study = write_study()
    files = tmp_path / "files"
    files.mkdir()
    cases = damaged_files(files)
    cases.pop("empty")  # an empty file becomes a new runs database
    before = snapshot(files)
    for fragment, path in cases.items():
        expect_user_error(wattless_cli("sweep", study, "--db", path, "--out", tmp_path / "out", "-q"), fragment)
    assert snapshot(files) == before and not (tmp_path / "out").exists()
