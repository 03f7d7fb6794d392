"""What a sweep skips, claims and waits for: artifacts checked against the size and SHA-256 the database holds,
and the leases of the trials this process runs (see :mod:`wattless.runs.leases`)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .._files import file_sha256
from .db import RunsDB, RunsDBError
from .leases import held_elsewhere, host_name, lease_seconds
from .study import Trial
from .trial import trial_path


def fingerprint(path: str | Path) -> dict[str, Any]:
    """The ``artifact_size`` (bytes) and ``artifact_sha256`` columns of a finished trial's file."""
    return {"artifact_size": os.path.getsize(path), "artifact_sha256": file_sha256(path)}


def artifact_problem(row: dict[str, Any]) -> str | None:
    """Why a ``done`` row's artifact cannot be trusted (missing, or not the file the trial wrote), else ``None``.
    Rows of an older wattless hold no checksum: their file only has to exist."""
    path = Path(row.get("artifact") or "")
    if not row.get("artifact") or not path.is_file():
        return "its artifact is missing"
    if row.get("artifact_size") is None or row.get("artifact_sha256") is None:
        return None
    if path.stat().st_size != row["artifact_size"]:
        return f"its artifact {path.name} has {path.stat().st_size} bytes, not the {row['artifact_size']} written"
    if fingerprint(path)["artifact_sha256"] != row["artifact_sha256"]:
        return f"its artifact {path.name} changed since the trial wrote it (SHA-256 differs)"
    return None


class Leases:
    """The trials this sweep process holds, renewed while they run, and the ones it waits for: held by another
    live process when it wanted them, taken over when their lease expires, left when that process ends them.

    The heartbeat is a thread with its own connection, so that a main loop busy elsewhere (starting the worker
    pool, logging to MLflow) never lets a lease lapse; :meth:`close` stops it.
    """

    def __init__(self, runs: RunsDB):
        self.runs, self.host, self.pid, self.seconds = runs, host_name(), os.getpid(), lease_seconds()
        self.beat_every = self.seconds / 4  # seconds between heartbeats
        self.held: set[str] = set()
        self.waiting: dict[str, Trial] = {}
        self.retry_failed: set[str] = set()  # trials that had failed before this sweep: they run again
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None  # started by the first claim

    def _beat(self) -> None:
        with RunsDB(self.runs.path) as runs:
            while not self.stop.wait(self.beat_every):
                try:
                    runs.renew(list(self.held), host=self.host, pid=self.pid, lease_s=self.seconds)
                except (RunsDBError, sqlite3.Error):  # locked too long or damaged: the main loop reports it
                    pass

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def busy(self, row: dict[str, Any] | None) -> bool:
        """Whether another live process holds this row now."""
        return bool(row) and held_elsewhere(row, self.host, self.pid, time.time())

    def claim(self, trial: Trial) -> bool:
        """Take ``trial`` for this process; when another process holds it, remember it in ``waiting``."""
        if self.runs.claim(trial.key, host=self.host, pid=self.pid, lease_s=self.seconds,
                           retry_failed=trial.key in self.retry_failed):
            self.held.add(trial.key)
            if self.thread is None:
                self.thread = threading.Thread(target=self._beat, name="wattless-lease-heartbeat", daemon=True)
                self.thread.start()
            return True
        row = self.runs.get_many([trial.key]).get(trial.key)
        if row is not None and row["status"] == "running":
            self.waiting[trial.key] = trial
        return False

    def wait_for_others(self) -> list[Trial]:
        """Block until some waited-for trials can be claimed (their lease expired, or they went back to pending):
        returns them; returns ``[]`` once every one was finished by its holder."""
        while self.waiting:
            time.sleep(min(1.0, self.beat_every))
            rows = self.runs.get_many(self.waiting)
            ready = []
            for key in list(self.waiting):
                row = rows.get(key)
                if row is None or row["status"] in ("done", "failed"):
                    del self.waiting[key]  # ended by its holder (an unreadable row is left to it too)
                elif not self.busy(row):
                    ready.append(self.waiting.pop(key))
            if ready:
                return ready
        return []


def plan(runs: RunsDB, trials: list[Trial], out: Path, warnings: list[str]) -> tuple[list[Trial], Leases]:
    """The trials to run (every one not ``done`` with its artifact intact), with a pending row each: ``done``
    rows whose artifact is missing or changed, or which are unreadable, are reopened (with a warning), and a
    changed artifact under ``out`` is removed (a baseline's is its base model: it is trained again)."""
    rows = runs.get_many(trial.key for trial in trials)
    unreadable = {key for key, _ in runs.skipped.values()}
    leases, todo, reopen = Leases(runs), [], []
    for trial in trials:
        row = rows.get(trial.key)
        problem = artifact_problem(row) if row is not None and row["status"] == "done" else None
        if row is not None and row["status"] == "done" and problem is None:
            continue
        todo.append(trial)
        if problem is not None or trial.key in unreadable:
            reopen.append(trial.key)
        if problem is not None:
            warnings.append(f"trial {trial.label} ({trial.key[:10]}): {problem}; running it again")
            if Path(row["artifact"] or "") == trial_path(out, trial):
                trial_path(out, trial).unlink(missing_ok=True)
        if trial.key in unreadable or (row is not None and row["status"] == "failed"):
            leases.retry_failed.add(trial.key)
    runs.add_pending(trial.columns() for trial in todo)
    runs.reopen(reopen)
    return todo, leases
