"""Running a study: every trial of the grid once, in parallel, resumable after a crash or a ``kill -9``.

How resume works: the parent process owns the database. Before any work it adds a ``pending`` row per
trial; it claims each trial just before starting it (``running``, under a lease with its host and pid that
it renews while the trial runs: see :mod:`wattless.runs.leases`). Workers write each artifact whole
(staging folder + ``os.replace``) and return the record; only then does the parent mark the row ``done``,
with the artifact's size and SHA-256. A rerun skips the trials that are ``done`` with that very artifact on
disk and runs all the others again: ``pending``, ``failed``, and ``running`` rows whose process is gone or
whose lease expired. A trial killed half-way is simply run again: its key (the row's unique key, and its
artifact's name) is the same, so nothing is lost or duplicated, and the staging folders of dead processes
are removed. Sweeps of one study on several hosts share the work: each leaves the trials another live
process holds, waits for them at the end, and takes over those whose lease expires.

Each fp32 base model is a job of its own, run before the recipe trials that need it, so several workers
never train the same model; a trial whose base file is missing trains it itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .db import DEFAULT_DB, RunsDB
from .executors import check_options, make_executor
from .resume import Leases, artifact_problem, fingerprint, plan
from .study import Study, Trial
from .trial import base_path, clean_staging

Listener = Callable[[str, dict[str, Any]], None]
"""Called with ``("start", {"study", "planned", "skipped", "busy", "workers"})`` once, then ``("trial", {"trial",
"row", "finished", "planned"})`` each time a trial ends, done or failed."""


@dataclass
class SweepResult:
    """What a sweep did: grid size, trials skipped (already done), run now, failed, or run meanwhile by another
    process (``busy``); ``keys`` lists the grid's trial keys in order."""

    study: str
    db: str
    out: str
    trials: int
    skipped: int = 0
    ran: int = 0
    failed: list[str] = field(default_factory=list)
    busy: int = 0
    keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_complete(row: dict[str, Any] | None) -> bool:
    """A trial that needs no rerun: ``done`` and its artifact on disk as the trial wrote it."""
    return bool(row and row["status"] == "done" and artifact_problem(row) is None)


def run_sweep(study: Study, *, db: str | Path = DEFAULT_DB, out: str | Path | None = None, workers: int | None = None,
              executor: str = "local", ray_address: str | None = None, threads: int = 1,
              mlflow_uri: str | None = None, listener: Listener | None = None) -> SweepResult:
    """Run every trial of ``study`` not yet done; rows go to the database ``db``, files under ``out``
    (default ``runs/<study name>``). See the module docstring for how a rerun resumes."""
    from .mlflow_log import MlflowLogger

    check_options(executor, workers=workers, threads=threads, ray_address=ray_address)
    logger = MlflowLogger(mlflow_uri, experiment=study.name) if mlflow_uri else None
    listener = listener or (lambda kind, info: None)
    out = Path(out if out is not None else Path("runs") / study.name).resolve()
    trials = study.trials()
    result = SweepResult(study.name, str(db), str(out), len(trials), keys=[t.key for t in trials])
    with RunsDB(db, warn=result.warnings.append) as runs:
        todo, leases = plan(runs, trials, out, result.warnings)
        result.skipped = len(trials) - len(todo)
        pool = make_executor(executor, workers=workers, threads=threads, ray_address=ray_address) if todo else None
        finished: set[str] = set()
        try:
            rows = runs.get_many(trial.key for trial in todo)
            result.busy = sum(leases.busy(rows.get(trial.key)) for trial in todo)
            listener("start", {"study": study.name, "planned": len(todo) - result.busy, "skipped": result.skipped,
                               "busy": result.busy, "workers": pool.capacity if todo else 0})
            if todo:
                for folder in ("base", "trials"):
                    (out / folder).mkdir(parents=True, exist_ok=True)
                clean_staging(out)
            batch = todo
            while batch:  # then the trials other processes held, as their leases expire
                _drive(pool, batch, out, runs, result, finished, logger, listener, leases)
                batch = leases.wait_for_others()
        except BaseException:  # interrupted (Ctrl-C) or broken: the unfinished trials go back to pending
            if pool is not None:
                pool.close(cancel=True)
            runs.release(key for key in leases.held if key not in finished)
            raise
        finally:
            leases.close()  # the heartbeat
        if pool is not None:
            pool.close()
        if todo:
            clean_staging(out)
        result.busy = len(todo) - result.ran - len(result.failed)
    if logger is not None:
        result.warnings.extend(logger.warnings)
    return result


def _drive(pool, trials: list[Trial], out: Path, runs: RunsDB, result: SweepResult, finished: set[str],
           logger, listener: Listener, leases: Leases) -> None:
    """Keep ``pool.capacity`` jobs in flight: base models first, each base's trials once it exists; each trial
    claimed as it starts (those another process holds are left in ``leases.waiting``)."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.base_key, []).append(trial)
    ready: deque[tuple[str, Trial]] = deque(("base", group[0]) for group in groups.values()
                                            if not base_path(out, group[0]).exists())
    ready.extend(("trial", t) for t in trials if base_path(out, t).exists())
    in_flight: dict[Future, tuple[str, Trial]] = {}
    retried: set[tuple[str, str]] = set()

    def close(trial: Trial, outcome: dict[str, Any]) -> None:
        if trial.key not in leases.held and not leases.claim(trial):
            return  # another process runs it
        _finish(runs, trial, outcome)
        leases.held.discard(trial.key)
        finished.add(trial.key)
        row = runs.get(trial.key)
        if row["status"] == "failed":
            result.failed.append(trial.key)
        else:
            result.ran += 1
            if logger is not None:
                logger.log(row)
        planned = max(len(finished), result.trials - result.skipped - result.busy)
        listener("trial", {"trial": trial, "row": row, "finished": len(finished), "planned": planned})

    while ready or in_flight:
        while ready and len(in_flight) < pool.capacity:
            kind, trial = ready.popleft()
            if kind == "trial" and not leases.claim(trial):
                continue  # done meanwhile, or another process runs it
            try:
                in_flight[pool.submit(kind, trial, out)] = (kind, trial)
            except Exception as exc:  # a broken pool (a worker was killed by the system)
                for member in (groups[trial.base_key] if kind == "base" else [trial]):
                    close(member, {"error": f"could not start: {type(exc).__name__}: {exc}"})
        if not in_flight:
            continue
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            kind, trial = in_flight.pop(future)
            outcome = _outcome(future)
            if outcome.pop("lost", False) and (kind, trial.key) not in retried:  # its worker died: once more
                retried.add((kind, trial.key))
                what = f"the base model of {trial.label}" if kind == "base" else trial.label
                result.warnings.append(f"{what}: {outcome['error'].splitlines()[0].rstrip('.')}; ran it again")
                ready.appendleft((kind, trial))
            elif kind == "trial":
                close(trial, outcome)
            elif "error" in outcome:
                for member in groups[trial.base_key]:
                    close(member, {**outcome, "error": f"training the base model failed: {outcome['error']}"})
            else:
                ready.extend(("trial", member) for member in groups[trial.base_key])


def _outcome(future: Future) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # the worker process died, or Ray lost the task
        return {"error": f"the worker was lost: {type(exc).__name__}: {exc}", "lost": True}


def _finish(runs: RunsDB, trial: Trial, outcome: dict[str, Any]) -> None:
    columns = {k: v for k, v in trial.columns().items() if k != "key"}
    timing = {k: outcome[k] for k in ("started", "finished", "seconds", "host", "pid") if outcome.get(k) is not None}
    if "error" in outcome:
        runs.finish(trial.key, error=outcome["error"], **columns, **timing)
    else:
        files = fingerprint(outcome["artifact"]) if Path(outcome["artifact"]).is_file() else {}
        runs.finish(trial.key, record=outcome["record"], artifact=outcome["artifact"], **columns, **timing, **files)
