"""What a sweep worker runs: train (or reuse) a trial's fp32 base model, apply its recipe, measure the result.

Files appear only complete: each is written in the worker's own staging folder ``OUT/.staging/HOST~PID``
and moved into place with one ``os.replace``. A worker killed mid-write leaves junk only in its staging
folder, which the next sweep (or worker) on that machine removes once the process is gone.

Layout of the output folder: ``base/<base key>.wlz`` (the fp32 model shared by every recipe trained the same
way) and ``trials/<trial key>.wlz|.onnx`` (one per recipe trial; the baseline's artifact is its base model).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import WattlessError
from .db import now, process_alive
from .study import Trial

STAGING = ".staging"
_datasets: dict[tuple, Any] = {}
_staging: dict[str, Path] = {}


def base_path(out: str | Path, trial: Trial) -> Path:
    return Path(out) / "base" / f"{trial.base_key}.wlz"


def trial_path(out: str | Path, trial: Trial) -> Path:
    """Where the trial's artifact lives (for the baseline: its base model)."""
    if trial.recipe is None:
        return base_path(out, trial)
    return Path(out) / "trials" / f"{trial.key}{trial.suffix}"


def clean_staging(out: str | Path) -> int:
    """Remove the staging folders of this machine's processes that are gone; returns how many."""
    root, host = Path(out) / STAGING, socket.gethostname()
    removed = 0
    for folder in root.glob("*~*") if root.is_dir() else []:
        owner, _, pid = folder.name.rpartition("~")
        if owner == host and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    _remove_if_empty(root)
    return removed


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (another process is writing there), or already gone
        pass


def staging_dir(out: str | Path) -> Path:
    """This process's staging folder under ``out`` (emptied when first used: anything there is a dead write)."""
    key = str(Path(out).resolve())
    if key not in _staging:
        clean_staging(out)
        folder = Path(out) / STAGING / f"{socket.gethostname()}~{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        _staging[key] = folder
    _staging[key].mkdir(parents=True, exist_ok=True)
    return _staging[key]


def release_staging(out: str | Path) -> None:
    """Remove this process's staging folder (and the staging root) when a job leaves them empty."""
    folder = _staging.get(str(Path(out).resolve()))
    if folder is not None:
        _remove_if_empty(folder)
        _remove_if_empty(folder.parent)


def load_data(trial: Trial):
    """The trial's data set, loaded once per process."""
    from ..data import load_dataset

    cache_key = (trial.dataset["name"], tuple(sorted(trial.dataset["options"].items())), trial.data_dir)
    if cache_key not in _datasets:
        _datasets[cache_key] = load_dataset(trial.dataset["name"], data_dir=trial.data_dir,
                                            **trial.dataset["options"])
    return _datasets[cache_key]


def ensure_base(trial: Trial, out: str | Path) -> Path:
    """The trial's fp32 base model file, trained and written now unless it exists. Two processes that train
    the same base model at once write the same bytes, and each replaces the file whole."""
    from ..io import save
    from ..train import TrainConfig
    from ..trainer import train_model as train

    path = base_path(out, trial)
    if path.exists():
        return path
    model = train(trial.model["name"], load_data(trial), model_kwargs=trial.model["kwargs"],
                  config=TrainConfig(**trial.train, seed=trial.seed), trust_code=trial.trust_code)
    staged = staging_dir(out) / path.name
    save(model, staged)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, path)
    return path


def run_trial(trial: Trial, out: str | Path) -> dict[str, Any]:
    """Apply the trial's recipe to its base model, write the artifact, measure it; the record and timings."""
    from ..io import load
    from ..measurement.meters import ENERGY_METER_ENV
    from ..measurement.record import measure_file
    from ..pipeline import run_recipe
    from ..recipe import Recipe

    started, clock = now(), time.perf_counter()
    base = ensure_base(trial, out)
    data = load_data(trial)
    artifact = trial_path(out, trial)
    if trial.recipe is not None:
        staged = staging_dir(out) / artifact.name
        source = load(base, trust_code=trial.trust_code, keep_parametrizations=True)
        run_recipe(source, data, Recipe.from_dict(trial.recipe), staged, seed=trial.seed, record=False)
        artifact.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, artifact)
    options = dict(trial.measure)
    designs, clock_mhz = options.pop("simulate", []), options.pop("clock_mhz", None)
    meter, previous = options.pop("energy_meter"), os.environ.get(ENERGY_METER_ENV)
    if artifact.suffix == ".onnx":
        options["engines"] = [e for e in options["engines"] if e != "torch"] or ["onnxruntime"]
    if designs:  # the study's accelerator designs
        from ..measurement.simulate import architecture

        options["designs"] = [architecture(name, clock_mhz=clock_mhz) for name in designs]
    os.environ[ENERGY_METER_ENV] = meter  # how measure() picks its meter
    try:
        record = measure_file(artifact, data, trust_code=trial.trust_code, **options)
    finally:
        if previous is None:
            os.environ.pop(ENERGY_METER_ENV, None)
        else:
            os.environ[ENERGY_METER_ENV] = previous
    record.update(name=trial.recipe_name, recipe_name=trial.recipe_name, study=trial.study, key=trial.key,
                  train={**trial.train, "seed": trial.seed}, base_artifact=str(base))
    return {"record": record, "artifact": str(artifact), "started": started, "finished": now(),
            "seconds": time.perf_counter() - clock}


def execute(kind: str, trial: Trial, out: str, threads: int = 1) -> dict[str, Any]:
    """The one entry point of every executor: ``kind`` is ``"base"`` (train the base model) or ``"trial"``.

    Never raises for a failing trial: the result holds ``error`` (one line for a user error, the traceback
    otherwise), so a bad trial is recorded as failed and the sweep goes on.
    """
    import torch

    torch.set_num_threads(threads)
    result: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        if kind == "base":
            result["artifact"] = str(ensure_base(trial, out))
        else:
            result.update(run_trial(trial, out))
    except WattlessError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # an internal error: keep the traceback for the bug report
        result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        release_staging(out)
    return result


def init_worker(threads: int) -> None:
    """Process-pool initializer: one torch thread per worker by default, so workers do not oversubscribe cores."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set in this process
        pass
