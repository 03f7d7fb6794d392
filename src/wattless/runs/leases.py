"""Trial leases: which process on which host runs a trial, so that several hosts can run one study on one
runs database without running a trial twice.

A sweep claims a trial just before it starts it: the row becomes ``running`` with the owner's host and pid,
a ``heartbeat`` and a ``lease_expires`` time (Unix seconds). While the trial runs, the owner renews the lease
(every quarter of its length). Another process leaves a running trial alone while its lease holds, and takes
it over once the lease has expired (the owner died or lost the database); on the owner's own host a trial
whose process is gone is taken over at once. The host name is ``$WATTLESS_HOST`` when set (tests pretend to
be several hosts), else the machine's name; the lease length is ``$WATTLESS_LEASE_SECONDS`` (default 120 s).
Hosts compare times, so their clocks must agree to well within a lease (NTP).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable

from .._atomic import process_alive
from ..errors import ConfigError

HOST_ENV = "WATTLESS_HOST"
LEASE_ENV = "WATTLESS_LEASE_SECONDS"
DEFAULT_LEASE_S = 120.0


def host_name() -> str:
    """This host's identity in the runs database: ``$WATTLESS_HOST``, else the machine's name."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def lease_seconds() -> float:
    """How long a trial's lease lasts without a heartbeat, in seconds (``$WATTLESS_LEASE_SECONDS``)."""
    text = os.environ.get(LEASE_ENV)
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 86_400:
        raise ConfigError(f"{LEASE_ENV}={text[:40]!r} must be a number of seconds between 0.1 and 86400")
    return value


def held_elsewhere(row: sqlite3.Row | dict, host: str, pid: int, clock: float) -> bool:
    """Whether a ``running`` row belongs to another live process: on this host while that process lives and
    its lease (if any) holds; on another host while its lease holds."""
    if row["status"] != "running" or (row["host"] == host and row["pid"] == pid):
        return False
    expires = row["lease_expires"] if "lease_expires" in row.keys() else None
    if isinstance(expires, int | float) and expires <= clock:
        return False  # expired: the owner stopped renewing it
    if row["host"] == host:
        return process_alive(row["pid"])
    return expires is not None  # a row of an older wattless (no lease) on another host is taken


def claim_row(conn: sqlite3.Connection, key: str, host: str, pid: int, started: str, lease_s: float,
              retry_failed: bool = True) -> bool:
    """In a write transaction: make trial ``key`` ``running`` for (host, pid) unless it is ``done``, ``failed``
    (when not ``retry_failed``), or held by another live process; returns whether it was claimed."""
    row = conn.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone()
    clock = time.time()
    if row is None or row["status"] == "done" or (row["status"] == "failed" and not retry_failed):
        return False
    if held_elsewhere(row, host, pid, clock):
        return False
    conn.execute("UPDATE runs SET status = 'running', host = ?, pid = ?, started = ?, error = NULL, heartbeat = ?, "
                 "lease_expires = ? WHERE key = ?", (host, pid, started, clock, clock + lease_s, key))
    return True


def renew(conn: sqlite3.Connection, keys: Iterable[str], host: str, pid: int, lease_s: float) -> None:
    """In a write transaction: push back the lease of the trials of ``keys`` this process still holds."""
    clock = time.time()
    conn.executemany("UPDATE runs SET heartbeat = ?, lease_expires = ? WHERE key = ? AND status = 'running' "
                     "AND host = ? AND pid = ?", [(clock, clock + lease_s, key, host, pid) for key in keys])
