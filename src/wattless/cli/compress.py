"""``wattless compress``, ``export`` and ``import``: make a smaller model, deploy one, or wrap plain weights."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import api
from ..errors import NothingWithinBudget
from ..report import comparison_table, ladder_table
from ._app import (
    BatchOpt,
    CountryOpt,
    DataDirOpt,
    DatasetOpt,
    ForceOpt,
    GridOpt,
    JsonOpt,
    ModelArgOpt,
    QuietOpt,
    RepeatsOpt,
    TargetOpt,
    TaskOpt,
    ThreadsOpt,
    TrustOpt,
    app,
    data_options,
    footprint_summary,
    out,
    print_json,
    say,
)
from ._progress import StepProgress


@app.command()
def compress(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to compress."),
    output: Path = typer.Option(..., "-o", "--output", help="Result: .wlz, or .onnx (int8 or fp32); with "
                                "--max-drop also NAME.auto: the best candidate as NAME.wlz or NAME.onnx."),
    dataset: str | None = DatasetOpt,
    int8: bool = typer.Option(False, "--int8", help="Deploy as int8 ONNX through ONNX Runtime."),
    int8_mode: str = typer.Option("static", "--int8-mode", help="static (QDQ, calibrated) or dynamic (int8 "
                                  "MatMul/Gemm weights, activations quantized at run time: transformers)."),
    step: list[str] | None = typer.Option(None, "--step", help="TECHNIQUE[:key=value,...] (repeat, in order)."),
    recipe: str | None = typer.Option(None, "--recipe", help="Recipe: a YAML file or a shipped name "
                                      "(`wattless list recipes`)."),
    max_drop: float | None = typer.Option(None, "--max-drop", help="Accuracy budget in points (regression: % of "
                                          "RMSE): try the ladder of shipped recipes, keep the best within it."),
    objective: str = typer.Option("size", "--objective", help="With --max-drop: size, latency or energy."),
    energy_model: str | None = typer.Option(None, "--energy-model", help="With --objective energy: "
                                            "simulated:DESIGN ranks by energy simulated on an accelerator design "
                                            "(ZigZag, extra hw)."),
    ladder: Path | None = typer.Option(None, "--ladder", help="With --max-drop: your own ladder YAML."),
    calibration: str = typer.Option("minmax", help="int8 calibration: minmax, entropy or percentile."),
    seed: int | None = typer.Option(None, help="Seed of the techniques (default: the model's)."),
    batch: str = BatchOpt, threads: int = ThreadsOpt, repeats: int = RepeatsOpt,
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
    grid: float | None = GridOpt, carbon_country: str | None = CountryOpt,
):
    """Compress a model with a recipe, steps or int8 deployment (or the best recipe within --max-drop), and
    measure it against the original. A recipe also writes OUTPUT.steps.json: a record after every step.
    The footprint of the compression (not of the measurements) is reported on stderr and under "footprint"."""

    def on_candidate(position: int, total: int, name: str) -> None:
        if not (quiet or json_out):
            say(f"candidate {position}/{total}: {name}")

    try:
        with StepProgress(quiet or json_out) as on_step:
            result = api.compress(
                model_path, dataset, output, steps=step or (), recipe=recipe, int8=int8, int8_mode=int8_mode,
                calibration=calibration, max_drop=max_drop, objective=objective, ladder=ladder, seed=seed,
                batches=batch, threads=threads, repeats=repeats, force=force, trust_code=trust_code,
                grid_intensity=grid, carbon_country=carbon_country, energy_model=energy_model, on_step=on_step,
                on_candidate=on_candidate, on_warning=lambda message: say(f"warning: {message}"),
                **data_options(data_dir, target, task))
    except NothingWithinBudget as exc:
        render(exc.result, max_drop, objective, json_out)
        raise
    footprint_summary(result.footprint, quiet)
    render(result, max_drop, objective, json_out)
    say(f"wrote {result.path}" + (f": {result.chosen}" if result.chosen else f" and {result.steps_file.name}"))


def render(result, max_drop: float | None, objective: str, json_out: bool) -> None:
    """The JSON object, or the tables: every ladder candidate, else each step and the before/after comparison."""
    if json_out:
        print_json(result.as_dict())
    elif result.candidates:
        out.print(ladder_table(result.baseline, result.candidates, max_drop=max_drop, objective=objective))
    else:
        if len(result.steps) > 2:
            steps = [{**r, "name": f"{i}. {r['stage']}" if i else r["stage"]} for i, r in enumerate(result.steps)]
            out.print(comparison_table(steps, title="After every step (validation in the JSON record)"))
        out.print(comparison_table([result.baseline, result.record],
                                   title=f"{result.baseline['name']} -> {result.record['name']}"))


@app.command()
def export(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to export."),
    output: Path = typer.Option(..., "-o", "--output", help="The .onnx file, or the folder of the C library."),
    fmt: str = typer.Option("onnx", "--format", help="onnx, or c: a C99 library running the packed weights."),
    int8: bool = typer.Option(False, "--int8", help="int8: static QDQ calibrated on --dataset, or --int8-mode "
                              "dynamic."),
    int8_mode: str = typer.Option("static", "--int8-mode", help="static or dynamic (no calibration data)."),
    dataset: str | None = DatasetOpt, data_dir: str | None = DataDirOpt, target: str | None = TargetOpt,
    task: str | None = TaskOpt, trust_code: bool = TrustOpt, force: bool = ForceOpt,
):
    """Export a model to ONNX (fp32, or int8: static with calibration data, or dynamic), or to a dependency-free C99
    library (--format c) that runs it from its packed weights with no malloc."""
    api.export(model_path, output, format=fmt, int8=int8, int8_mode=int8_mode, dataset=dataset, force=force,
               trust_code=trust_code, **data_options(data_dir, target, task))
    say(f"wrote {output}")


@app.command(name="import")
def import_weights(
    weights: str = typer.Argument(..., metavar="WEIGHTS", help="A .safetensors or state_dict .pt file."),
    model: str = typer.Option(..., "--model", "-m", help="Architecture the weights belong to."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Data set the model is for."),
    output: Path = typer.Option(..., "-o", "--output", help="The .wlz file to write."),
    model_arg: list[str] | None = ModelArgOpt,
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt,
):
    """Wrap plain PyTorch weights in a .wlz model file."""
    size = api.import_file(weights, model, dataset, output, model_kwargs=api.parse_model_args(model_arg),
                           trust_code=trust_code, force=force, **data_options(data_dir, target, task))
    say(f"wrote {output} ({size} bytes)")
