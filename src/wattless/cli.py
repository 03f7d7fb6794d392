"""The ``wattless`` command line: parse, call the public API, render. No logic of its own.

Exit codes: 0 ok, 2 user error (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from .errors import ConfigError, WattlessError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Make neural networks smaller, faster and greener, and prove it with measurements.")
out = Console()
if not out.is_terminal:  # piped or captured: wide enough that tables are not squeezed into 80 columns
    out.width = 160
err = Console(stderr=True)

DatasetOpt = typer.Option(None, "--dataset", "-d", help="Data set name, csv:PATH or ts:PATH.")
DataDirOpt = typer.Option(None, "--data-dir", help="Folder holding the data set files.")
TargetOpt = typer.Option(None, "--target", help="Label column of a csv:PATH data set.")
TaskOpt = typer.Option(None, "--task", help="classification or regression (csv:PATH; default inferred).")
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output.")
ForceOpt = typer.Option(False, "--force", help="Overwrite the output file if it exists.")
MAX_BATCH = 65536
TrustOpt = typer.Option(False, "--trust-code", help="Allow importing a package.module:factory model.")
GridOpt = typer.Option(None, "--grid-intensity", help="Carbon intensity of your electricity, g CO2e/kWh, for the "
                       "footprint (default: $WATTLESS_GRID_INTENSITY, else the world average 475).")
CountryOpt = typer.Option(None, "--carbon-country", help="ISO3 country (e.g. FRA) whose grid intensity to take "
                          "from CodeCarbon's bundled data (pip install 'wattless\\[carbon]').")


def _dataset(name: str | None, data_dir: str | None, target: str | None, task: str | None, meta=None):
    from .data import load_dataset

    if name is None and meta:
        name = (meta.get("dataset") or {}).get("name")
        if name and name.startswith("csv:"):
            raise ConfigError(f"the model was trained on {name}; pass --dataset csv:PATH --target COLUMN")
    if name is None:
        raise ConfigError("no data set given; pass --dataset NAME (see `wattless list datasets`)")
    if task is not None and task not in ("classification", "regression"):
        raise ConfigError(f"--task {task!r} unknown; use classification or regression")
    return load_dataset(name, data_dir=data_dir, target=target, task=task)


def _check_output(path: Path, force: bool, *inputs: Path) -> None:
    """Refuse to overwrite an input, or an existing file without --force."""
    for source in inputs:
        if source.exists() and path.exists() and path.resolve() == source.resolve():
            raise ConfigError(f"output {str(path)!r} is the input file; choose another -o path")
    if path.exists() and not force:
        raise ConfigError(f"{str(path)!r} already exists; choose another -o path or pass --force")
    if not path.parent.exists():
        raise ConfigError(f"folder {str(path.parent)!r} does not exist; create it first")


def _parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--model-arg {item!r} must be key=value, e.g. hidden=[256,128]")
        try:
            kwargs[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--model-arg {item!r}: cannot read the value {value!r}; write e.g. hidden=[256,128]") \
                from None
    return kwargs


def _batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1 or max(batches) > MAX_BATCH:
        raise ConfigError(f"--batch {text!r} must be whole numbers from 1 to {MAX_BATCH} separated by commas, "
                          "e.g. 1,256")
    return batches


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def _load_any(path: str, model: str | None, dataset, model_args, trust_code: bool):
    """A ``.wlz`` file, or plain weights (``.safetensors``/``.pt``) for the architecture ``--model``."""
    from .api import base_meta, model_spec
    from .io import import_weights, load

    if Path(path).suffix in (".safetensors", ".pt", ".pth"):
        if model is None:
            raise ConfigError(f"{path} holds plain weights; pass --model NAME to say which architecture")
        spec = model_spec(model, dataset, _parse_kwargs(model_args))
        return import_weights(path, spec, base_meta(dataset, spec, 0), trust_code=trust_code)
    return load(path, trust_code=trust_code)


@app.command()
def train(
    model: str = typer.Option(..., "--model", "-m", help="Zoo name (see `wattless list models`) or pkg.mod:fn."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Data set name, or csv:PATH."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.wlz)."),
    epochs: int = typer.Option(10, help="Training epochs."),
    seed: int = typer.Option(0, help="Seed: the same seed gives a byte-identical model file."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    batch_size: int = typer.Option(128, help="Mini-batch size."),
    optimizer: str = typer.Option("adam", help="adam or sgd."),
    schedule: str = typer.Option("cosine", help="Learning-rate schedule: none, cosine or step (per epoch), or "
                                 "onecycle (per batch, peak --lr)."),
    patience: int | None = typer.Option(None, help="Stop after this many epochs without validation gain."),
    warmup_epochs: int = typer.Option(0, "--warmup-epochs", help="Epochs of linear learning-rate warm-up from near "
                                      "0 (per batch) before the schedule."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Label smoothing of the classification "
                                          "loss, 0 to below 1."),
    augment: str | None = typer.Option(None, "--augment", help="Augment image training batches, comma list of crop, "
                                       "flip, cutout, randaugment (randaugment: pip install 'wattless\\[augment]')."),
    crop_padding: int = typer.Option(4, "--crop-padding", help="Zero padding of --augment crop, pixels."),
    cutout: int = typer.Option(16, "--cutout", help="Side of the square --augment cutout zeroes, pixels."),
    model_arg: list[str] | None = typer.Option(None, "--model-arg", help="Model option key=value (repeat)."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
    grid: float | None = GridOpt, carbon_country: str | None = CountryOpt,
):
    """Train a model and write it to a .wlz file; report the training's footprint (time, energy, CO2e) on stderr."""
    from . import api
    from .measurement.footprint import Footprint, grid_intensity
    from .train import TrainConfig, evaluate

    if output.suffix != ".wlz":
        raise ConfigError(f"-o must end in .wlz, got {str(output)!r}")
    _check_output(output, force)
    config = _validated(TrainConfig, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                        optimizer=optimizer, schedule=schedule, patience=patience, warmup_epochs=warmup_epochs,
                        label_smoothing=label_smoothing, augment=augment or (), crop_padding=crop_padding,
                        cutout=cutout)
    footprint = Footprint(grid=grid_intensity(grid, carbon_country))  # validated before any work
    data = _dataset(dataset, data_dir, target, task)
    with _epoch_progress(config.epochs, quiet or json_out or not err.is_terminal) as on_epoch, footprint:
        trained = api.train(model, data, model_kwargs=_parse_kwargs(model_arg), config=config,
                            trust_code=trust_code, on_epoch=on_epoch)
    test = evaluate(trained.module, data.X_test, data.y_test, data.task)
    size = api.save(trained, output)  # the footprint stays out of the file: same seed, same bytes
    result = {"model": model, "dataset": data.name, "seed": seed, "artifact": str(output), "size_bytes": size,
              "epochs_run": trained.meta["train"]["epochs_run"], "val": trained.meta["train"]["val"], "test": test,
              "footprint": footprint.result.as_dict()}
    if not quiet:
        err.print(footprint.result.summary(), markup=False, highlight=False, soft_wrap=True)
    if json_out:
        _print_json(result)
        return
    from .report.format import format_bytes

    metric = "accuracy" if "accuracy" in test else "rmse"
    shown = f"{test[metric] * 100:.2f}%" if metric == "accuracy" else f"{test[metric]:.4g}"
    out.print(f"trained {model} on {data.name}: test {metric} {shown}, "
              f"{result['epochs_run']} epochs, wrote {output} ({format_bytes(size)})")


def _validated(config_type, **fields):
    from pydantic import ValidationError

    try:
        return config_type(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        option = str(problem["loc"][0]).replace("_", "-") if problem["loc"] else "options"
        raise ConfigError(f"--{option} {problem['input']!r}: {problem['msg']}") from None


class _epoch_progress:
    """A Rich progress bar over epochs on stderr (or nothing when quiet); yields the epoch callback."""

    def __init__(self, epochs: int, quiet: bool):
        self.epochs, self.quiet, self.progress = epochs, quiet, None

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[info]}"), console=err, transient=True)
        self.progress.start()
        task = self.progress.add_task("train", total=self.epochs, info="")

        def on_epoch(epoch: int, row: dict) -> None:
            info = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k.startswith("val_") and k != "val_loss")
            self.progress.update(task, completed=epoch, info=info)

        return on_epoch

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False


@app.command()
def measure(
    model_path: str = typer.Argument(..., metavar="MODEL", help="A .wlz, .onnx, .safetensors or .pt file."),
    dataset: str | None = DatasetOpt,
    batch: str = typer.Option("1,256", "--batch", help="Batch sizes to time, comma-separated."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for every engine."),
    repeats: int = typer.Option(50, "--repeats", min=1, help="Timed runs per engine and batch."),
    engines: str = typer.Option("torch,onnxruntime,int8", help="torch, onnxruntime and/or int8 (ORT int8)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Architecture of plain weights (.pt)."),
    model_arg: list[str] | None = typer.Option(None, "--model-arg", help="Model option key=value (repeat)."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, json_out: bool = JsonOpt,
):
    """Measure accuracy, size, MACs, latency and estimated energy of a model file."""
    from .measurement.record import measure_module, measure_onnx

    chosen = {e.strip() for e in engines.split(",") if e.strip()}
    if not chosen or chosen - {"torch", "onnxruntime", "int8"}:
        raise ConfigError(f"--engines {engines!r}: use a comma list of torch, onnxruntime, int8")
    options = {"batches": _batches(batch), "threads": threads, "repeats": repeats, "engines": chosen}
    path = Path(model_path)
    if path.suffix == ".onnx":
        from .deploy import read_onnx_metadata

        meta = json.loads(read_onnx_metadata(path).get("wattless", "{}"))
        data = _dataset(dataset, data_dir, target, task, meta)
        record = measure_onnx(path, data, **options)
    else:
        data = _dataset(dataset, data_dir, target, task, _peek_meta(path))
        loaded = _load_any(model_path, model, data, model_arg, trust_code)
        record = measure_module(loaded, data, file_path=path if path.suffix == ".wlz" else None, **options)
    record["name"] = path.name
    if json_out:
        _print_json(record)
        return
    from .report import record_table

    out.print(record_table(record))


def _peek_meta(path: Path) -> dict | None:
    if path.suffix != ".wlz":
        return None
    from .artifact import read_metadata

    return read_metadata(path)


@app.command()
def compress(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to compress."),
    output: Path = typer.Option(..., "-o", "--output", help="Result: .wlz, or .onnx (int8 or fp32)."),
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
    ladder: Path | None = typer.Option(None, "--ladder", help="With --max-drop: your own ladder YAML."),
    calibration: str = typer.Option("minmax", help="int8 calibration: minmax, entropy or percentile."),
    seed: int | None = typer.Option(None, help="Seed of the techniques (default: the model's)."),
    batch: str = typer.Option("1,256", "--batch", help="Batch sizes to time, comma-separated."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for every engine."),
    repeats: int = typer.Option(50, "--repeats", min=1, help="Timed runs per engine and batch."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
    grid: float | None = GridOpt, carbon_country: str | None = CountryOpt,
):
    """Compress a model with a recipe, steps or int8 deployment (or the best recipe within --max-drop), and
    measure it against the original. A recipe also writes OUTPUT.steps.json: a record after every step.
    The footprint of the compression (not of the measurements) is reported on stderr and under "footprint"."""
    from . import api
    from .measurement.footprint import Footprint, grid_intensity
    from .pipeline import check_output_kind, run_recipe
    from .recipe import CALIBRATION_METHODS, INT8_MODES, OBJECTIVES, Recipe

    given = [option for option, value in (("--recipe", recipe), ("--step", step or None), ("--max-drop", max_drop))
             if value is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of --recipe, --step or --max-drop, not {' and '.join(given)}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    if calibration not in CALIBRATION_METHODS:
        raise ConfigError(f"--calibration {calibration!r} unknown; use one of {', '.join(CALIBRATION_METHODS)}")
    batches = _batches(batch)
    footprint = Footprint(grid=grid_intensity(grid, carbon_country))
    _check_output(output, force, Path(model_path))
    if max_drop is not None:
        if int8:
            raise ConfigError("--int8 does not combine with --max-drop: int8 candidates are in the ladder, "
                              "chosen when -o ends in .onnx")
        return _compress_within_budget(model_path, output, dataset, max_drop, objective, ladder, seed, batches,
                                       threads, repeats, data_dir, target, task, trust_code, json_out, quiet,
                                       footprint)
    parsed = Recipe.load(recipe) if recipe is not None else Recipe.from_steps(step) if step else Recipe()
    if int8_mode not in INT8_MODES:
        raise ConfigError(f"--int8-mode {int8_mode!r} unknown; use one of {', '.join(INT8_MODES)}")
    if int8 and not parsed.int8:
        parsed.int8, parsed.calibration, parsed.int8_mode = True, calibration, int8_mode
    if not parsed.steps and not parsed.int8:
        raise ConfigError("nothing to do: give --int8, --step TECHNIQUE[:key=value,...], --recipe or --max-drop")
    check_output_kind(parsed, output)
    steps_file = output.with_name(output.name + ".steps.json")
    _check_output(steps_file, force, Path(model_path))
    source = api.load(model_path, trust_code=trust_code)
    data = _dataset(dataset, data_dir, target, task, source.meta)
    options = {"batches": batches, "threads": threads, "repeats": repeats}
    with _step_progress(parsed.step_names, quiet or json_out) as on_step, footprint:
        pipeline = run_recipe(source, data, parsed, output, seed=seed, on_step=on_step)
    from ._atomic import write_text_atomic

    write_text_atomic(steps_file, json.dumps(pipeline.records, default=str, indent=1) + "\n")
    baseline = api.measure(model_path, data, trust_code=trust_code, engines=("torch", "onnxruntime"), **options)
    baseline["name"] = "original"
    result = api.measure(output, data, trust_code=trust_code, engines=("torch", "onnxruntime"), **options)
    result["name"] = output.name
    if not quiet:
        err.print(footprint.result.summary(), markup=False, highlight=False, soft_wrap=True)
    if json_out:
        _print_json({**result, "baseline": baseline, "steps": pipeline.records,
                     "footprint": footprint.result.as_dict()})
        return
    from .report import comparison_table

    if len(pipeline.records) > 2:
        steps = [{**r, "name": f"{i}. {r['stage']}" if i else r["stage"]} for i, r in enumerate(pipeline.records)]
        out.print(comparison_table(steps, title="After every step (validation in the JSON record)"))
    out.print(comparison_table([baseline, result], title=f"{Path(model_path).name} -> {output.name}"))
    err.print(f"wrote {output} and {steps_file.name}")


class _step_progress:
    """A Rich progress bar over a recipe's steps on stderr (nothing when quiet or not a terminal)."""

    def __init__(self, names: list[str], quiet: bool):
        from rich.progress import Progress

        self.names = names
        self.progress = None if quiet or not err.is_terminal else Progress(console=err, transient=True)

    def __enter__(self):
        if self.progress is None:
            return None
        self.progress.start()
        self.task = self.progress.add_task("compressing", total=len(self.names))

        def on_step(position: int, name: str) -> None:
            self.progress.update(self.task, completed=position - 1,
                                 description=f"step {position}/{len(self.names)}: {name}")

        return on_step

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=len(self.names))
            self.progress.stop()


def _compress_within_budget(model_path, output, dataset, max_drop, objective, ladder, seed, batches, threads,
                            repeats, data_dir, target, task, trust_code, json_out, quiet, footprint):
    from . import api
    from .ladder import compress_within_budget
    from .recipe import load_ladder
    from .report import ladder_table

    candidates = load_ladder(objective, ladder)  # validated before any work
    source = api.load(model_path, trust_code=trust_code)
    data = _dataset(dataset, data_dir, target, task, source.meta)

    def on_candidate(position: int, total: int, name: str) -> None:
        if not (quiet or json_out):
            err.print(f"candidate {position}/{total}: {name}")

    with footprint:  # the search measures every candidate: that measuring is part of its work
        found = compress_within_budget(source, data, output, max_drop=max_drop, objective=objective,
                                       ladder=candidates, seed=seed, batches=batches, threads=threads,
                                       repeats=repeats, on_candidate=on_candidate)
    if json_out:
        _print_json({**(next(r["record"] for r in found.rows if r["status"] == "chosen") if found.path else {}),
                     "baseline": found.baseline, "chosen": found.chosen, "candidates": found.rows,
                     "footprint": footprint.result.as_dict()})
    else:
        out.print(ladder_table(found.baseline, found.rows, max_drop=max_drop, objective=objective))
    if found.path is None:
        raise ConfigError(f"no candidate stays within --max-drop {max_drop:g}; nothing written. Raise the budget "
                          "or pass --ladder with milder recipes")
    if not quiet:
        err.print(footprint.result.summary(), markup=False, highlight=False, soft_wrap=True)
    err.print(f"wrote {output}: {found.chosen}")


@app.command()
def export(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to export."),
    output: Path = typer.Option(..., "-o", "--output", help="The .onnx file to write."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    int8: bool = typer.Option(False, "--int8", help="int8: static QDQ calibrated on --dataset, or --int8-mode "
                              "dynamic."),
    int8_mode: str = typer.Option("static", "--int8-mode", help="static or dynamic (no calibration data)."),
    dataset: str | None = DatasetOpt, data_dir: str | None = DataDirOpt, target: str | None = TargetOpt,
    task: str | None = TaskOpt, trust_code: bool = TrustOpt, force: bool = ForceOpt,
):
    """Export a model to ONNX (fp32, or int8: static with calibration data, or dynamic)."""
    from . import api
    from .recipe import INT8_MODES

    if fmt != "onnx":
        raise ConfigError(f"--format {fmt!r} unknown; use onnx")
    if int8_mode not in INT8_MODES:
        raise ConfigError(f"--int8-mode {int8_mode!r} unknown; use one of {', '.join(INT8_MODES)}")
    _check_output(output, force, Path(model_path))
    source = api.load(model_path, trust_code=trust_code)
    static = int8 and int8_mode == "static"
    data = _dataset(dataset, data_dir, target, task, source.meta) if static else None
    api.export(source, output, int8=int8, dataset=data, int8_mode=int8_mode)
    err.print(f"wrote {output}")


@app.command(name="import")
def import_weights(
    weights: str = typer.Argument(..., metavar="WEIGHTS", help="A .safetensors or state_dict .pt file."),
    model: str = typer.Option(..., "--model", "-m", help="Architecture the weights belong to."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Data set the model is for."),
    output: Path = typer.Option(..., "-o", "--output", help="The .wlz file to write."),
    model_arg: list[str] | None = typer.Option(None, "--model-arg", help="Model option key=value (repeat)."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt,
):
    """Wrap plain PyTorch weights in a .wlz model file."""
    from . import api

    if output.suffix != ".wlz":
        raise ConfigError(f"-o must end in .wlz, got {str(output)!r}")
    _check_output(output, force, Path(weights))
    data = _dataset(dataset, data_dir, target, task)
    size = api.save(_load_any(weights, model, data, model_arg, trust_code), output)
    err.print(f"wrote {output} ({size} bytes)")


@app.command()
def inspect(
    model_path: str = typer.Argument(..., metavar="MODEL", help="A .wlz model file."),
    trust_code: bool = TrustOpt, json_out: bool = JsonOpt,
):
    """Show what a model file holds: architecture, data set, recipe, and per layer its shape, parameters,
    non-zeros, bits, bytes in the file, MACs and estimated energy (45 nm, batch 1) with its share of the total."""
    from . import api
    from .measurement.ops import count_params
    from .measurement.profile import dense_fp32_counts, layer_profile, micronet_score, stored_bytes_by_layer

    loaded = api.load(model_path, trust_code=trust_code)
    module = api.deployable_module(loaded.module)
    params, nonzero = count_params(module)
    profile = layer_profile(loaded.module, module, loaded.input_shape)
    stored = stored_bytes_by_layer(model_path, [layer["name"] for layer in profile["layers"]])
    for layer in profile["layers"]:
        layer["bytes"] = stored.get(layer["name"])
    energy = {k: v for k, v in profile["energy"].items() if k != "layers"}
    info = {"file": model_path, "size_bytes": Path(model_path).stat().st_size, "model": loaded.spec,
            "task": loaded.task, "dataset": (loaded.meta.get("dataset") or {}).get("name"),
            "seed": loaded.meta.get("seed"), "recipe": loaded.recipe, "params": params, "nonzero_params": nonzero,
            "macs": profile["macs"], "bops": profile["bops"], "energy_j_per_sample": energy,
            "micronet": profile["micronet"], "layers": profile["layers"]}
    if json_out:
        _print_json(info)
        return
    from .report import layer_table
    from .report.format import format_energy

    score = micronet_score(profile["micronet"], dense_fp32_counts(params, profile["macs"]))
    out.print(f"[bold]{model_path}[/]: {loaded.name} for {info['dataset']} ({loaded.task}), "
              f"{params:,} params ({nonzero:,} non-zero), {profile['macs']:,} MACs/sample, "
              f"{format_energy(energy['value'])}/sample ({energy['method']}), MicroNet score {score:.3f} vs this "
              f"architecture dense fp32 (2.0), recipe: {[s['technique'] for s in loaded.recipe] or 'none'}")
    out.print(layer_table(profile["layers"]))


@app.command()
def search(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to compress."),
    output: Path = typer.Option(..., "-o", "--output", help="Best model: .wlz, or .onnx (allows int8)."),
    max_drop: float = typer.Option(..., "--max-drop", help="Accuracy budget in points (regression: % of RMSE), "
                                   "checked on validation, confirmed on test."),
    objective: str = typer.Option("size", "--objective", help="size, latency or energy."),
    trials: int = typer.Option(20, "--trials", help="Trials in all; a rerun with the same inputs resumes."),
    multi: bool = typer.Option(False, "--multi", help="Multi-objective (accuracy, size, latency): Pareto front."),
    epochs: int | None = typer.Option(None, "--epochs", help="Fine-tuning/distillation epochs per trial."),
    db: Path = typer.Option(Path("runs.db"), "--db", help="Runs database (Optuna's trials are stored there too)."),
    dataset: str | None = DatasetOpt, seed: int | None = typer.Option(None, help="Seed of the techniques."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
):
    """Search the recipe space with Optuna for the best model within --max-drop, and write it."""
    from . import api
    from .recipe import OBJECTIVES
    from .runs.search import search as run_search

    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    _check_output(output, force, Path(model_path))
    source = api.load(model_path, trust_code=trust_code)
    data = _dataset(dataset, data_dir, target, task, source.meta)

    def on_trial(number: int, values: dict) -> None:
        if not (quiet or json_out):
            err.print(f"trial {number}: validation drop {values['val_drop']:.2f}, {objective} {values[objective]:.4g}")

    found = run_search(source, data, output, max_drop=max_drop, objective=objective, trials=trials, multi=multi,
                       db=db, epochs=epochs, seed=seed, model_path=model_path, on_trial=on_trial)
    if json_out:
        _print_json({"study": found.study_name, "chosen": found.chosen, "front": found.front, "trials": found.rows})
    else:
        from .report.search import search_table

        out.print(search_table(found.rows, objective=objective, max_drop=max_drop, front=found.front))
    if found.path is None:
        raise ConfigError(f"no trial stays within --max-drop {max_drop:g}; nothing written. Raise the budget or "
                          "--trials")
    err.print(f"wrote {output}: trial {found.chosen} (study {found.study_name} in {db})")


@app.command(name="list")
def list_registered(what: str = typer.Argument("all", help="models, datasets, techniques, recipes or all.")):
    """List the registered models, data sets, techniques and shipped recipes."""
    from .data import list_datasets
    from .models import list_models
    from .recipe import shipped_recipes
    from .techniques import list_techniques

    tables = {"models": list_models() + ["package.module:factory"],
              "datasets": list_datasets() + ["csv:PATH", "ts:PATH"],
              "techniques": list_techniques() + ["quantize.int8 (deployment via --int8)"],
              "recipes": shipped_recipes()}
    if what != "all" and what not in tables:
        raise ConfigError(f"cannot list {what!r}; use models, datasets, techniques, recipes or all")
    for name, entries in tables.items():
        if what in ("all", name):
            out.print(f"[bold]{name}[/]: " + ", ".join(entries), soft_wrap=True)


@app.command()
def demo(
    output: Path = typer.Option(Path("runs/demo"), "-o", "--output", help="Folder for the report."),
    quiet: bool = QuietOpt, json_out: bool = JsonOpt,
):
    """Train an MLP on digits, compress it two ways, measure everything, and write a report."""
    from .demo import run_demo

    records, files = run_demo(output, log=None if (quiet or json_out) else err.print)
    if json_out:
        _print_json({"records": records, "files": {k: str(v) for k, v in files.items()}})
        return
    from .report import comparison_table

    out.print(comparison_table(records, title="wattless demo: MLP on digits (1 thread)"))
    out.print(f"report: {files['markdown']}")


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., metavar="RUNS", help="Results folders (searched recursively) or "
                                      "JSON files of records (results.json, measure --json, OUT.steps.json)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for report.html, report.md and plots."),
    title: str = typer.Option("wattless report", "--title", help="Title of the report."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report in the folder."),
):
    """Write a self-contained HTML report and a Markdown one of result records: tables, Pareto fronts of
    quality vs size, latency and energy, and per-layer breakdowns, grouped per data set."""
    from .report import collect_records, write_report

    files = write_report(collect_records(runs), output, title=title, force=force)
    err.print(f"wrote {files['html']} and {files['markdown']} ({len(files['plots'])} plot(s))")


DbOpt = typer.Option(Path("runs.db"), "--db", help="The runs database (SQLite).")


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
    from .runs import load_study, run_sweep
    from .runs.tables import SweepProgress, runs_table

    parsed = load_study(study, data_dir=data_dir, trust_code=trust_code)  # validated in full before any work
    with SweepProgress(err, quiet=quiet or json_out, name=parsed.name) as progress:
        result = run_sweep(parsed, db=db, out=out_dir, workers=workers, executor=executor, ray_address=ray_address,
                           threads=threads, mlflow_uri=mlflow_uri, listener=progress)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if json_out:
        _print_json(result.as_dict())
    elif not quiet:
        from .runs import RunsDB

        with RunsDB(db, create=False) as runs:
            rows = sorted(runs.get_many(result.keys).values(), key=lambda row: row["id"])
        out.print(runs_table(rows, title=f"study {parsed.name}: {len(rows)} trials in {db}"))
    if result.failed:
        raise ConfigError(f"{len(result.failed)} of {result.trials} trials failed; see `wattless runs list "
                          f"--db {db} --status failed` (a rerun retries them)")


runs_app = typer.Typer(no_args_is_help=True, help="The runs database: list, show and export result records.")
app.add_typer(runs_app, name="runs")
RunsStudyOpt = typer.Option(None, "--study", help="Only this study.")
RunsStatusOpt = typer.Option(None, "--status", help="Only pending, running, done or failed runs.")
RunsModelOpt = typer.Option(None, "--model", help="Only this model.")
RunsDatasetOpt = typer.Option(None, "--dataset", help="Only this data set.")


@runs_app.command("list")
def runs_list(db: Path = DbOpt, study: str | None = RunsStudyOpt, status: str | None = RunsStatusOpt,
              model: str | None = RunsModelOpt, dataset: str | None = RunsDatasetOpt, json_out: bool = JsonOpt):
    """A table of the runs, with their headline metrics."""
    from .runs import RunsDB
    from .runs.tables import runs_table

    with RunsDB(db, create=False) as runs:
        rows = runs.list(study=study, status=status, model=model, dataset=dataset)
    if json_out:
        _print_json({"runs": [{k: v for k, v in row.items() if k != "record"} for row in rows]})
        return
    out.print(runs_table(rows, title=f"{len(rows)} run(s) in {db}"))


@runs_app.command("show")
def runs_show(run: str = typer.Argument(..., metavar="ID|KEY", help="Run id, trial key, or a key prefix."),
              db: Path = DbOpt, json_out: bool = JsonOpt):
    """Everything about one run: its columns and its full record."""
    from .runs import RunsDB
    from .runs.tables import run_table

    with RunsDB(db, create=False) as runs:
        row = runs.get(run)
    if row is None:
        raise ConfigError(f"no run {run!r} in {db}; see `wattless runs list --db {db}`")
    if json_out:
        _print_json(row)
        return
    out.print(run_table(row))
    if row.get("record"):
        from .report import record_table

        out.print(record_table(row["record"]))


@runs_app.command("export")
def runs_export(csv_out: bool = typer.Option(False, "--csv", help="CSV: one line per run, no record JSON."),
                json_export: bool = typer.Option(False, "--json", help='JSON: {"runs": [...]} with full records.'),
                output: Path | None = typer.Option(None, "-o", "--output", help="File to write (default: stdout)."),
                db: Path = DbOpt, study: str | None = RunsStudyOpt, status: str | None = RunsStatusOpt,
                model: str | None = RunsModelOpt, dataset: str | None = RunsDatasetOpt, force: bool = ForceOpt):
    """Export the runs as CSV or JSON, to a file or stdout."""
    from .runs import RunsDB

    if csv_out == json_export:
        raise ConfigError("give one of --csv or --json")
    if output is not None:
        _check_output(output, force)
    with RunsDB(db, create=False) as runs:
        text = runs.export("csv" if csv_out else "json", study=study, status=status, model=model, dataset=dataset)
    if output is None:
        sys.stdout.write(text)
        return
    from ._atomic import write_text_atomic

    write_text_atomic(output, text)
    err.print(f"wrote {output}")


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    from typer.exceptions import TyperException
    from typer.main import get_command

    command = get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="wattless", standalone_mode=False)
    except WattlessError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except TyperException as exc:  # a usage error (missing or unknown option, bad value): one line too
        if not hasattr(exc, "format_message") or type(exc).__name__ == "NoArgsIsHelpError":
            raise
        context = getattr(exc, "ctx", None)
        where = f"{context.command_path} --help" if context is not None else "wattless --help"
        sys.stderr.write(f"error: {exc.format_message()} (see {where})\n")
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:  # Ctrl-C
        sys.stderr.write("aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
