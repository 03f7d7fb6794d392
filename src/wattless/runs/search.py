"""Search the recipe space with Optuna for the best model within an accuracy budget.

Each trial builds a recipe from Optuna's suggestions (the space depends on the objective, below), runs it on
a copy of the model, measures the written file, and scores it on the validation split: the budget is an
Optuna constraint (``validation drop - max_drop <= 0``), so TPE (one objective) or NSGA-II (``multi``: accuracy,
size and latency) learn where the feasible region is. The best feasible trial is then written again (same
recipe and seed give the same bytes) and confirmed on the held-out test split; one that fails there is
reported as ``rejected on test`` and the next best is taken, as ``compress --max-drop`` does.

Spaces (``-o`` decides the file kind: ``.onnx`` allows int8 deployment):

- ``size``: pruning then k-means weight sharing (clusters) or learned per-layer bit widths (``quantize.learned_bits``
  at a mean target), stored sparse and entropy-coded. The pruning is
  sensitivity-driven (``prune.sensitivity``: a size ratio, shared out over the layers by their measured
  sensitivity) or gradual magnitude pruning with a global sparsity or one sparsity per layer. The first trial
  is the shipped ``deep-compression-auto`` recipe, so the search starts from it and can only report something
  at least as small when it finds it.
- ``latency``: distillation into the teacher structured-pruned to a width, optionally int8 deployment. The
  first trial is the shipped ``kd-pruned-student-int8`` (``.onnx``) or its fp32 form (``.wlz``).
- ``energy``: either space, chosen per trial.

Optuna keeps its trials in the same SQLite file as the runs database (its own tables), under a study name
derived from the model file, the data set, the objective and the budget, so an interrupted search resumes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import Dataset, as_dataset
from ..errors import ConfigError
from ..io import WattlessModel
from ..ladder import choose_within_budget, drop, objective_value, parse_energy_model
from ..recipe import OBJECTIVES, Recipe
from ..techniques.prune.magnitude import prunable_weights

SPACE_VERSION = 3
"""Bump when a space changes, so a resumed search never mixes trials of two spaces."""
CLUSTERS = (8, 16, 32, 64)
SIZE_RECIPE, LATENCY_RECIPE = "deep-compression-auto", "kd-pruned-student-int8"
"""The shipped recipes the size and latency searches start from (their first trial)."""
MAGNITUDE_RECIPE = "deep-compression"
"""The shipped recipe whose magnitude-pruning settings the global and per-layer trials keep."""
LEARNED_BITS_RECIPE = "deep-compression-learned-bits"
"""The shipped recipe whose ``quantize.learned_bits`` settings the learned-width trials keep."""
TARGET_BITS = (1.8, 3.0)
"""The range of ``quantize.learned_bits``' target_bits (mean bits per non-zero weight) the size search explores."""
SIZE_RATIOS = (20.0, 400.0)
"""The range of ``prune.sensitivity``'s size_ratio the size search explores (log-uniform)."""


def _shipped_step(recipe: str, technique: str):
    """The config of ``technique`` in the shipped ``recipe``."""
    return next(cfg for name, cfg in Recipe.load(recipe).steps if name == technique)


def default_epochs(objective: str) -> int:
    """Fine-tuning (size) or distillation epochs per trial: those of the shipped recipe the search starts from."""
    if objective == "size":
        return _shipped_step(SIZE_RECIPE, "prune.sensitivity").finetune_epochs
    return _shipped_step(LATENCY_RECIPE, "distill.hinton").epochs


@dataclass
class SearchResult:
    """The written model (None when no trial fits the budget), its trial, and a row per trial."""

    path: Path | None
    chosen: int | None
    study_name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    front: list[int] = field(default_factory=list)


def size_recipe(trial, layers: list[str], epochs: int) -> dict[str, Any]:
    """Prune (by sensitivity, global or per layer) -> k-means sharing or learned bit widths; the file stores sparse,
    entropy-coded codes. Every setting the trial does not choose is the shipped recipes' (``deep-compression-auto``
    for sensitivity and sharing, ``deep-compression`` for magnitude pruning, ``deep-compression-learned-bits`` for
    the learned widths)."""
    scope = trial.suggest_categorical("scope", ["sensitivity", "global", "layer"])
    if scope == "sensitivity":
        prune = {**_shipped_step(SIZE_RECIPE, "prune.sensitivity").recipe_fields(), "finetune_epochs": epochs,
                 "size_ratio": trial.suggest_float("size_ratio", *SIZE_RATIOS, log=True)}
        step = {"prune.sensitivity": prune}
    else:
        prune = {**_shipped_step(MAGNITUDE_RECIPE, "prune.magnitude").recipe_fields(), "finetune_epochs": epochs}
        prune.pop("sparsity"), prune.pop("layer_sparsity", None)
        if scope == "global":
            prune.update(scope="global", sparsity=trial.suggest_float("sparsity", 0.8, 0.98))
        else:
            prune.update(scope="layer", layer_sparsity={
                name: trial.suggest_float(f"sparsity_{name}", 0.5, 0.99) for name in layers})
        step = {"prune.magnitude": prune}
    if trial.suggest_categorical("quantizer", ["kmeans", "learned_bits"]) == "kmeans":
        share = {**_shipped_step(SIZE_RECIPE, "share.kmeans").recipe_fields(),
                 "clusters": trial.suggest_categorical("clusters", list(CLUSTERS))}
        return {"steps": [step, {"share.kmeans": share}]}
    widths = {**_shipped_step(LEARNED_BITS_RECIPE, "quantize.learned_bits").recipe_fields(),
              "target_bits": trial.suggest_float("target_bits", *TARGET_BITS)}
    return {"steps": [step, {"quantize.learned_bits": widths}]}


def narrow_recipe(trial, epochs: int, int8_allowed: bool) -> dict[str, Any]:
    """Distillation into the teacher structured-pruned to ``width`` (kept channels), then maybe int8; the other
    distillation settings are the shipped ``kd-pruned-student-int8`` recipe's."""
    distill = {**_shipped_step(LATENCY_RECIPE, "distill.hinton").recipe_fields(), "epochs": epochs,
               "width": trial.suggest_float("width", 0.1, 0.9),
               "importance": trial.suggest_categorical("importance", ["l1", "taylor"])}
    steps: list[Any] = [{"distill.hinton": distill}]
    if int8_allowed and trial.suggest_categorical("int8", [True, False]):
        steps.append("quantize.int8")
    return {"steps": steps}


def build_recipe(trial, objective: str, layers: list[str], epochs: int, int8_allowed: bool) -> dict[str, Any]:
    if objective == "size":
        return size_recipe(trial, layers, epochs)
    if objective == "latency":
        return narrow_recipe(trial, epochs, int8_allowed)
    family = trial.suggest_categorical("family", ["sparse", "narrow"])
    return size_recipe(trial, layers, epochs) if family == "sparse" else narrow_recipe(trial, epochs, int8_allowed)


def first_trial(objective: str, epochs: int, int8_allowed: bool) -> dict[str, Any]:
    """The shipped recipe the search starts from, as Optuna parameters read from that recipe."""
    if objective == "size":
        prune, share = _shipped_step(SIZE_RECIPE, "prune.sensitivity"), _shipped_step(SIZE_RECIPE, "share.kmeans")
        return {"scope": "sensitivity", "size_ratio": prune.size_ratio, "quantizer": "kmeans",
                "clusters": share.clusters}
    distill = _shipped_step(LATENCY_RECIPE, "distill.hinton")
    start = {"width": distill.width, "importance": distill.importance, **({"int8": True} if int8_allowed else {})}
    return start if objective == "latency" else {"family": "narrow", **start}


def study_name(model_path: str | Path | None, model: WattlessModel, data: Dataset, objective: str,
               max_drop: float, multi: bool, epochs: int, seed: int, suffix: str) -> str:
    """A name that changes with anything that changes what the trials measure, so a rerun resumes it."""
    identity = {"model": hashlib.sha256(Path(model_path).read_bytes()).hexdigest() if model_path
                else json.dumps(model.meta, sort_keys=True), "dataset": data.describe(), "objective": objective,
                "max_drop": max_drop, "multi": multi, "epochs": epochs, "seed": seed, "suffix": suffix,
                "space": SPACE_VERSION}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"wattless-search-{objective}-{digest}"


def search(model: WattlessModel, dataset: Dataset | str, out: str | Path, *, max_drop: float,
           objective: str = "size", trials: int = 20, multi: bool = False, db: str | Path = "runs.db",
           epochs: int | None = None, seed: int | None = None, model_path: str | Path | None = None,
           batches: tuple[int, ...] = (1, 256), repeats: int = 20, energy_model: str | None = None,
           on_trial: Callable[[int, dict[str, Any]], None] | None = None) -> SearchResult:
    """Run (or resume) ``trials`` Optuna trials and write the best feasible model to ``out``; with ``energy_model``
    ``simulated:DESIGN`` (objective energy) the trials compare their energy simulated on that design."""
    import optuna

    from ..measurement.provenance import energy_value
    from ..measurement.record import measure_file
    from ..pipeline import file_quality, run_recipe
    from ..train import predict, quality
    from .db import RunsDB

    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    if not 0 <= max_drop < 100:
        raise ConfigError(f"--max-drop must be between 0 and 100 points, got {max_drop}")
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    out = Path(out)
    if out.suffix not in (".wlz", ".onnx"):
        raise ConfigError(f"output must end in .wlz or .onnx, got {str(out)!r}")
    design = parse_energy_model(energy_model, objective)
    data = as_dataset(dataset)
    seed = model.meta.get("seed", 0) if seed is None else seed
    epochs = epochs if epochs is not None else default_epochs(objective)
    int8_allowed = out.suffix == ".onnx"
    layers = [name for name, _ in prunable_weights(model.module)]
    from ..io import deployable_module

    base_val = quality(predict(deployable_module(model.module), data.X_val), data, "val")
    base_test = quality(predict(deployable_module(model.module), data.X_test), data, "test")
    ranked = objective if design is None else f"{objective}-simulated-{design.name}-{design.digest}"
    name = study_name(model_path, model, data, ranked, max_drop, multi, epochs, seed, out.suffix)
    runs = RunsDB(db)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are reported in the result rows
    storage = optuna.storages.RDBStorage(f"sqlite:///{Path(db).resolve()}",
                                         engine_kwargs={"connect_args": {"timeout": 60}})

    sampler = optuna.samplers.NSGAIISampler(seed=seed) if multi else optuna.samplers.TPESampler(seed=seed)
    directions = ["maximize", "minimize", "minimize"] if multi else ["minimize"]
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=directions,
                                load_if_exists=True)
    if not study.trials:
        study.enqueue_trial(first_trial(objective, epochs, int8_allowed))

    def evaluate(trial) -> float | tuple[float, float, float]:
        recipe = Recipe.from_dict(build_recipe(trial, objective, layers, epochs, int8_allowed))
        trial.set_user_attr("recipe", recipe.to_dict())
        suffix = ".onnx" if (recipe.int8 or out.suffix == ".onnx") else ".wlz"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial{suffix}"
            try:
                run_recipe(model, data, recipe, path, seed=seed, record=False)
            except ConfigError as exc:  # e.g. more clusters than a pruned layer has distinct weights
                trial.set_user_attr("error", str(exc))
                raise
            record = measure_file(path, data, batches=batches, repeats=repeats,
                                  engines=("onnxruntime",) if suffix == ".onnx" else ("torch",),
                                  designs=[design] if design is not None else ())
            val = file_quality(path, data, "val")
        record["val"] = val
        energy = (energy_value(record, "estimated") if design is None  # trials compare one provenance
                  else record["simulated"][design.name]["energy_j_per_sample"])
        values = {"val_drop": drop(base_val, val), "test_drop": drop(base_test, record),
                  "size": objective_value(record, "size"), "latency": objective_value(record, "latency"),
                  "energy": energy}
        trial.set_constraint("accuracy_budget", values["val_drop"] - max_drop)  # feasible when <= 0
        for key, value in values.items():
            trial.set_user_attr(key, value)
        record.update(name=f"trial {trial.number}", artifact=None)
        runs.add(record, study=name, key=f"{name}/{trial.number}")
        if on_trial is not None:
            on_trial(trial.number, values)
        if multi:
            return -values["val_drop"], values["size"], values["latency"]
        return values[objective]

    remaining = trials - len([t for t in study.trials if t.state.is_finished()])
    if remaining > 0:
        study.optimize(evaluate, n_trials=remaining, catch=(ConfigError,))
    return _finish(study, model, data, out, max_drop, objective, multi, seed, name)


def _rows(study) -> list[dict[str, Any]]:
    """One row per finished trial: its parameters, recipe and measurements, or the error that stopped it."""
    rows = []
    for trial in study.trials:
        attrs = trial.user_attrs
        if not trial.state.is_finished() or "recipe" not in attrs:
            continue
        row = {"trial": trial.number, "params": trial.params, "recipe": attrs["recipe"]}
        if "val_drop" in attrs:
            row.update({k: attrs[k] for k in ("val_drop", "test_drop", "size", "latency", "energy")})
        else:
            row["error"] = attrs.get("error", "failed")
        rows.append(row)
    return rows


def _finish(study, model: WattlessModel, data: Dataset, out: Path, max_drop: float, objective: str, multi: bool,
            seed: int, name: str) -> SearchResult:
    """Rank the feasible trials, confirm on test, and write the chosen one to ``out``."""
    from ..pipeline import run_recipe

    rows = _rows(study)
    for row in rows:
        if "error" in row:
            row["status"] = f"failed: {row['error']}"
        else:
            row["status"] = "within budget" if row["val_drop"] <= max_drop else "over budget"
    front = [t.number for t in study.best_trials] if multi else []
    chosen = choose_within_budget(rows, max_drop, rank=lambda row: row[objective])  # rows are in trial order
    if chosen is None:
        return SearchResult(None, None, name, rows, front)
    recipe = Recipe.from_dict(chosen["recipe"])
    if recipe.int8 and out.suffix != ".onnx":
        raise ConfigError(f"the best trial deploys as int8 ONNX; use -o {out.with_suffix('.onnx')}")
    run_recipe(model, data, recipe, out, seed=seed, record=False)
    chosen["status"] = "chosen"
    return SearchResult(out, chosen["trial"], name, rows, front)
