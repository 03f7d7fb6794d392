"""Where sweep jobs run: a local process pool, or tasks on a Ray cluster. Both run the same function
(:func:`wattless.runs.trial.execute`) and hand back ``concurrent.futures.Future`` objects, so the sweep
loop is one and the same."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import socket
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..errors import ConfigError
from .study import Trial
from .trial import execute, init_worker

EXECUTORS = ("local", "ray")
PRELOAD = ["wattless.runs.executors", "wattless.pipeline", "wattless.measurement.record", "wattless.deploy"]
"""Imported once by the forkserver, so that every worker forks with torch and the measurement code loaded."""


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def exit_with_parent(poll_s: float = 1.0) -> threading.Thread:
    """End this worker process as soon as the process that started it is gone (``kill -9`` gives a sweep no
    chance to stop its pool). Forkserver workers hold the forkserver's and the resource tracker's pipes open
    and wait for work on a queue whose writing end they hold too, so nothing else would ever end them (and
    with them the forkserver and the tracker, which exit once the last worker has). A daemon thread waits on
    the parent's sentinel (a pipe that reaches end-of-file when the parent dies) or, without one, polls
    ``os.getppid()`` every ``poll_s`` seconds."""
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    first_parent = os.getppid()

    def watch() -> None:
        if sentinel is not None:
            multiprocessing.connection.wait([sentinel])
        else:
            while os.getppid() == first_parent:
                time.sleep(poll_s)
        os._exit(1)  # at once: the work is lost with the sweep, which reruns it on resume

    thread = threading.Thread(target=watch, name="wattless-exit-with-parent", daemon=True)
    thread.start()
    return thread


def init_local_worker(threads: int) -> None:
    """Initializer of the local pool's workers: torch threads, and exit with the sweep."""
    exit_with_parent()
    init_worker(threads)


class LocalExecutor:
    """A pool of worker processes on this machine (forkserver where available, else spawn: never a plain
    fork of a process that may hold torch threads and an open database). A worker that dies (killed, out
    of memory) breaks the pool, which fails every job in flight; the next submit starts a new pool."""

    def __init__(self, workers: int, threads: int = 1):
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if self.context.get_start_method() == "forkserver":
            self.context.set_forkserver_preload(PRELOAD)
        self.capacity, self.threads = workers, threads
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.capacity, mp_context=self.context, initializer=init_local_worker,
                                   initargs=(self.threads,))

    def submit(self, kind: str, trial: Trial, out: Path) -> Future:
        return self.call(execute, kind, trial, str(out), self.threads)

    def call(self, function, *args) -> Future:
        """``function(*args)`` in a worker, on a new pool if a worker died since the last call."""
        try:
            return self.pool.submit(function, *args)
        except BrokenProcessPool:  # a worker died: its jobs failed (the sweep retries them), carry on anew
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = self._start()
            return self.pool.submit(function, *args)

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel)


class RayExecutor:
    """Ray tasks on the cluster at ``address`` (``ray start --head`` prints it), or on a local Ray instance
    with ``workers`` CPUs when no address is given. Each task reserves ``threads`` CPUs."""

    def __init__(self, workers: int | None, threads: int = 1, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray; install it with: pip install 'wattless[ray]'") from None
        self.ray, self.threads = ray, threads
        self.started = not ray.is_initialized()  # a driver that already called ray.init keeps its instance
        options = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.started and address:
            check_reachable(address)
        try:
            if self.started and address:
                ray.init(address=address, **options)
            elif self.started:
                ray.init(num_cpus=(workers or default_workers()) * threads, include_dashboard=False, **options)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise ConfigError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = workers or max(1, cpus // threads)
        self.task = ray.remote(execute).options(num_cpus=threads, max_retries=0)
        self.refs: list = []

    def submit(self, kind: str, trial: Trial, out: Path) -> Future:
        ref = self.task.remote(kind, trial, str(out), self.threads)
        self.refs.append(ref)
        return ref.future()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self.refs:
                self.ray.cancel(ref, force=True)
        if self.started:
            self.ray.shutdown()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` nobody listens on (``ray.init`` would keep retrying for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", "ray://..." and other forms are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start it with "
                          "`ray start --head` and pass the address it prints") from None


def check_options(kind: str, *, workers: int | None, threads: int = 1, ray_address: str | None = None) -> None:
    """Refuse bad executor options before any work starts."""
    if kind not in EXECUTORS:
        raise ConfigError(f"--executor {kind!r} unknown; use local or ray")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if threads < 1:
        raise ConfigError(f"--threads-per-worker must be at least 1, got {threads}")
    if ray_address and kind != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    if kind == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--executor ray needs Ray; install it with: pip install 'wattless[ray]'") from None


def make_executor(kind: str, *, workers: int | None, threads: int = 1, ray_address: str | None = None):
    """An executor by name (options checked by :func:`check_options`)."""
    check_options(kind, workers=workers, threads=threads, ray_address=ray_address)
    if kind == "ray":
        return RayExecutor(workers, threads, ray_address)
    return LocalExecutor(workers or default_workers(), threads)
