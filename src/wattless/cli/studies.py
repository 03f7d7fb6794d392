"""``wattless search`` and ``wattless sweep``: the best model within a budget, and a grid into the runs database."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import api
from ..errors import NothingWithinBudget, TrialsFailed
from ..report.runs import SweepProgress, runs_table
from ..report.search import search_table
from ._app import (
    DataDirOpt,
    DatasetOpt,
    ForceOpt,
    JsonOpt,
    QuietOpt,
    TargetOpt,
    TaskOpt,
    TrustOpt,
    app,
    data_options,
    err,
    out,
    print_json,
    say,
)

DbOpt = typer.Option(Path("runs.db"), "--db", help="The runs database (SQLite).")


@app.command()
def search(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to compress."),
    output: Path = typer.Option(..., "-o", "--output", help="Best model: .wlz, or .onnx (allows int8)."),
    max_drop: float = typer.Option(..., "--max-drop", help="Accuracy budget in points (regression: % of RMSE), "
                                   "checked on validation, confirmed on test."),
    objective: str = typer.Option("size", "--objective", help="size, latency or energy."),
    energy_model: str | None = typer.Option(None, "--energy-model", help="With --objective energy: "
                                            "simulated:DESIGN compares energy simulated on an accelerator design."),
    trials: int = typer.Option(20, "--trials", help="Trials in all; a rerun with the same inputs resumes."),
    multi: bool = typer.Option(False, "--multi", help="Multi-objective (accuracy, size, latency): Pareto front."),
    epochs: int | None = typer.Option(None, "--epochs", help="Fine-tuning/distillation epochs per trial."),
    db: Path = typer.Option(Path("runs.db"), "--db", help="Runs database (Optuna's trials are stored there too)."),
    dataset: str | None = DatasetOpt, seed: int | None = typer.Option(None, help="Seed of the techniques."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
):
    """Search the recipe space with Optuna for the best model within --max-drop, and write it."""

    def on_trial(number: int, values: dict) -> None:
        if not (quiet or json_out):
            say(f"trial {number}: validation drop {values['val_drop']:.2f}, {objective} {values[objective]:.4g}")

    try:
        found = api.search(model_path, dataset, output, max_drop=max_drop, objective=objective, trials=trials,
                           multi=multi, epochs=epochs, db=db, seed=seed, force=force, trust_code=trust_code,
                           energy_model=energy_model, on_trial=on_trial, **data_options(data_dir, target, task))
    except NothingWithinBudget as exc:
        render_search(exc.result, objective, max_drop, json_out)
        raise
    render_search(found, objective, max_drop, json_out)
    say(f"wrote {output}: trial {found.chosen} (study {found.study_name} in {db})")


def render_search(found, objective: str, max_drop: float, json_out: bool) -> None:
    if json_out:
        print_json({"study": found.study_name, "chosen": found.chosen, "front": found.front, "trials": found.rows})
    else:
        out.print(search_table(found.rows, objective=objective, max_drop=max_drop, front=found.front))


@app.command()
def sweep(
    study: Path = typer.Argument(..., metavar="STUDY.yaml", help="The study: models, datasets, seeds, train, "
                                 "recipes (see README: Sweeps)."),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Parallel trials (default: the cores; Ray: "
                                       "the cluster's CPUs)."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster HEAD:6379 (default: a local "
                                           "Ray instance)."),
    db: Path = DbOpt,
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for base models and artifacts (default "
                                        "runs/STUDY-NAME)."),
    threads: int = typer.Option(1, "--threads-per-worker", help="Torch threads of each worker."),
    mlflow_uri: str | None = typer.Option(None, "--mlflow-uri", help="Also log every result to MLflow here."),
    data_dir: str | None = DataDirOpt, trust_code: bool = TrustOpt, json_out: bool = JsonOpt,
    quiet: bool = QuietOpt,
):
    """Run a study's grid (models x data sets x recipes x seeds) into the runs database; rerun to resume."""
    failure = None
    with SweepProgress(err, quiet=quiet or json_out, name=study.stem) as progress:
        try:
            result = api.sweep(study, db=db, out=out_dir, workers=workers, executor=executor,
                               ray_address=ray_address, threads=threads, mlflow_uri=mlflow_uri, data_dir=data_dir,
                               trust_code=trust_code, listener=progress)
        except TrialsFailed as exc:
            failure, result = exc, exc.result
    for warning in result.warnings:
        say(f"warning: {warning}")
    if json_out:
        print_json(result.as_dict())
    elif not quiet:
        rows = api.runs_rows(db, keys=result.keys)
        out.print(runs_table(rows, title=f"study {result.study}: {len(rows)} trials in {db}"))
    if failure is not None:
        raise failure
