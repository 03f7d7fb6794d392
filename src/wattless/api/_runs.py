"""Studies and results: search the recipe space, sweep a grid into the runs database, read it back, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..errors import ConfigError, NothingWithinBudget, TrialsFailed
from ..io import WattlessModel
from ..ladder import parse_energy_model
from ..recipe import OBJECTIVES
from ._common import (
    MAX_FINETUNE_EPOCHS,
    MAX_THREADS,
    MAX_TRIALS,
    MAX_WORKERS,
    check_output,
    check_seed,
    check_whole,
    dataset_for,
)
from ._compress import _source
from ._models import as_model, check_savable

DEFAULT_DB = Path("runs.db")


def search(model: WattlessModel | str | Path, dataset: Dataset | str | None, out: str | Path, *, max_drop: float,
           objective: str = "size", trials: int = 20, multi: bool = False, epochs: int | None = None,
           db: str | Path = DEFAULT_DB, seed: int | None = None, force: bool = False, trust_code: bool = False,
           data_dir: str | None = None, target: str | None = None, task: str | None = None,
           energy_model: str | None = None, on_trial: Callable[[int, dict[str, Any]], None] | None = None):
    """Search the recipe space with Optuna for the best model within ``max_drop`` points (validation, confirmed on
    test) and write it to ``out``; a rerun with the same inputs resumes. Raises :class:`NothingWithinBudget`
    (holding the result, every trial in it) when no trial fits."""
    from ..runs.search import search as run_search

    check_seed(seed)
    check_whole(trials, "--trials", 1, MAX_TRIALS)
    if epochs is not None:
        check_whole(epochs, "--epochs", 0, MAX_FINETUNE_EPOCHS)  # the bounds of the techniques' epochs
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {str(objective)[:40]!r} unknown; use one of {', '.join(OBJECTIVES)}")
    model, dataset = as_model(model, dataset)
    check_savable(model, out)
    out = check_output(out, force, *([] if isinstance(model, WattlessModel) else [model]))
    parse_energy_model(energy_model, objective)  # before any work
    source, files = _source(model, trust_code)
    data = dataset_for(dataset, source.meta, data_dir=data_dir, target=target, task=task)
    found = run_search(source, data, out, max_drop=max_drop, objective=objective, trials=trials, multi=multi, db=db,
                       epochs=epochs, seed=seed, model_path=files[0] if files else None, energy_model=energy_model,
                       on_trial=on_trial)
    if found.path is None:
        raise NothingWithinBudget(f"no trial stays within --max-drop {max_drop:g}; nothing written. Raise the budget "
                                  "or --trials", found)
    return found


def sweep(study: str | Path, *, db: str | Path = DEFAULT_DB, out: str | Path | None = None, workers: int | None = None,
          executor: str = "local", ray_address: str | None = None, threads: int = 1, mlflow_uri: str | None = None,
          data_dir: str | None = None, trust_code: bool = False, listener=None):
    """Run a study's grid (models x data sets x recipes x seeds) into the runs database ``db``; a rerun resumes.
    Raises :class:`TrialsFailed` (holding the result) when some trials failed."""
    from ..runs import load_study, run_sweep

    if workers is not None and (not isinstance(workers, int) or workers > MAX_WORKERS):  # below 1: check_options
        check_whole(workers, "--workers", 1, MAX_WORKERS)
    if not isinstance(threads, int) or threads > MAX_THREADS:
        check_whole(threads, "--threads-per-worker", 1, MAX_THREADS)
    parsed = load_study(study, data_dir=data_dir, trust_code=trust_code)  # validated in full before any work
    result = run_sweep(parsed, db=db, out=out, workers=workers, executor=executor, ray_address=ray_address,
                       threads=threads, mlflow_uri=mlflow_uri, listener=listener)
    if result.failed:
        raise TrialsFailed(f"{len(result.failed)} of {result.trials} trials failed; see `wattless runs list --db "
                           f"{db} --status failed` (a rerun retries them)", result)
    return result


def runs_rows(db: str | Path = DEFAULT_DB, *, keys: list[str] | None = None, **filters: str | None) -> list[dict]:
    """Rows of the runs database (read only): those of ``keys`` in id order, else those matching ``filters``
    (``study``, ``status``, ``model``, ``dataset``)."""
    from ..runs import RunsDB

    with RunsDB(db, create=False) as runs:
        if keys is not None:
            return sorted(runs.get_many(keys).values(), key=lambda row: row["id"])
        return runs.list(**filters)


def runs_show(run: str, db: str | Path = DEFAULT_DB) -> dict[str, Any]:
    """Everything about one run (id, trial key or key prefix): its columns and its full record."""
    from ..runs import RunsDB

    with RunsDB(db, create=False) as runs:
        row = runs.get(run)
    if row is None:
        raise ConfigError(f"no run {str(run)[:80]!r} in {db}; see `wattless runs list --db {db}`")
    return row


def runs_export(fmt: str, db: str | Path = DEFAULT_DB, out: str | Path | None = None, *, force: bool = False,
                **filters: str | None) -> str | Path:
    """The runs as ``csv`` or ``json`` text, or written atomically to ``out`` (returned)."""
    from .._atomic import write_text_atomic
    from ..runs import RunsDB

    if fmt not in ("csv", "json"):
        raise ConfigError("give one of --csv or --json")
    if out is not None:
        check_output(out, force)
    with RunsDB(db, create=False) as runs:
        text = runs.export(fmt, **filters)
    if out is None:
        return text
    write_text_atomic(Path(out), text)
    return Path(out)


def report(runs: list[str | Path], out: str | Path, *, title: str = "wattless report",
           force: bool = False) -> dict[str, Any]:
    """A self-contained HTML report and a Markdown one of result records (folders, JSON files or a runs
    database): tables, Pareto fronts of quality vs size, latency and energy, per-layer breakdowns."""
    from ..report import collect_records, write_report

    return write_report(collect_records([Path(p) for p in runs]), Path(out), title=title, force=force)


def demo(out: str | Path = "runs/demo", *, log: Callable[[str], None] | None = None, force: bool = False):
    """Train an MLP on digits, compress it two ways, measure everything, and write a report; returns the records
    and the files written. Refuses a folder holding anything but the demo's own unchanged files unless ``force``."""
    from ._demo import run_demo

    return run_demo(out, log=log, force=force)
