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

DatasetOpt = typer.Option(None, "--dataset", "-d", help="Data set name, or csv:PATH.")
DataDirOpt = typer.Option(None, "--data-dir", help="Folder holding the data set files.")
TargetOpt = typer.Option(None, "--target", help="Label column of a csv:PATH data set.")
TaskOpt = typer.Option(None, "--task", help="classification or regression (csv:PATH; default inferred).")
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output.")
ForceOpt = typer.Option(False, "--force", help="Overwrite the output file if it exists.")
MAX_BATCH = 65536
TrustOpt = typer.Option(False, "--trust-code", help="Allow importing a package.module:factory model.")


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
    schedule: str = typer.Option("cosine", help="Learning-rate schedule: none, cosine or step."),
    patience: int | None = typer.Option(None, help="Stop after this many epochs without validation gain."),
    model_arg: list[str] | None = typer.Option(None, "--model-arg", help="Model option key=value (repeat)."),
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
):
    """Train a model and write it to a .wlz file."""
    from . import api
    from .train import TrainConfig, evaluate

    if output.suffix != ".wlz":
        raise ConfigError(f"-o must end in .wlz, got {str(output)!r}")
    _check_output(output, force)
    config = _validated(TrainConfig, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                        optimizer=optimizer, schedule=schedule, patience=patience)
    data = _dataset(dataset, data_dir, target, task)
    with _epoch_progress(config.epochs, quiet or json_out or not err.is_terminal) as on_epoch:
        trained = api.train(model, data, model_kwargs=_parse_kwargs(model_arg), config=config,
                            trust_code=trust_code, on_epoch=on_epoch)
    test = evaluate(trained.module, data.X_test, data.y_test, data.task)
    size = api.save(trained, output)
    result = {"model": model, "dataset": data.name, "seed": seed, "artifact": str(output), "size_bytes": size,
              "epochs_run": trained.meta["train"]["epochs_run"], "val": trained.meta["train"]["val"], "test": test}
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
        raise ConfigError(f"--{problem['loc'][0]}: {problem['msg']}") from None


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
    int8: bool = typer.Option(False, "--int8", help="Deploy as static int8 (QDQ) ONNX through ONNX Runtime."),
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
):
    """Compress a model with a recipe, steps or int8 deployment (or the best recipe within --max-drop), and
    measure it against the original. A recipe also writes OUTPUT.steps.json: a record after every step."""
    from . import api
    from .pipeline import check_output_kind, run_recipe
    from .recipe import CALIBRATION_METHODS, OBJECTIVES, Recipe

    given = [option for option, value in (("--recipe", recipe), ("--step", step or None), ("--max-drop", max_drop))
             if value is not None]
    if len(given) > 1:
        raise ConfigError(f"give one of --recipe, --step or --max-drop, not {' and '.join(given)}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    if calibration not in CALIBRATION_METHODS:
        raise ConfigError(f"--calibration {calibration!r} unknown; use one of {', '.join(CALIBRATION_METHODS)}")
    batches = _batches(batch)
    _check_output(output, force, Path(model_path))
    if max_drop is not None:
        if int8:
            raise ConfigError("--int8 does not combine with --max-drop: int8 candidates are in the ladder, "
                              "chosen when -o ends in .onnx")
        return _compress_within_budget(model_path, output, dataset, max_drop, objective, ladder, seed, batches,
                                       threads, repeats, data_dir, target, task, trust_code, json_out, quiet)
    parsed = Recipe.load(recipe) if recipe is not None else Recipe.from_steps(step) if step else Recipe()
    if int8 and not parsed.int8:
        parsed.int8, parsed.calibration = True, calibration
    if not parsed.steps and not parsed.int8:
        raise ConfigError("nothing to do: give --int8, --step TECHNIQUE[:key=value,...], --recipe or --max-drop")
    check_output_kind(parsed, output)
    steps_file = output.with_name(output.name + ".steps.json")
    _check_output(steps_file, force, Path(model_path))
    source = api.load(model_path, trust_code=trust_code)
    data = _dataset(dataset, data_dir, target, task, source.meta)
    options = {"batches": batches, "threads": threads, "repeats": repeats}
    with _step_progress(parsed.step_names, quiet or json_out) as on_step:
        pipeline = run_recipe(source, data, parsed, output, seed=seed, on_step=on_step)
    from ._atomic import write_text_atomic

    write_text_atomic(steps_file, json.dumps(pipeline.records, default=str, indent=1) + "\n")
    baseline = api.measure(model_path, data, trust_code=trust_code, engines=("torch", "onnxruntime"), **options)
    baseline["name"] = "original"
    result = api.measure(output, data, trust_code=trust_code, engines=("torch", "onnxruntime"), **options)
    result["name"] = output.name
    if json_out:
        _print_json({**result, "baseline": baseline, "steps": pipeline.records})
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
                            repeats, data_dir, target, task, trust_code, json_out, quiet):
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

    found = compress_within_budget(source, data, output, max_drop=max_drop, objective=objective,
                                   ladder=candidates, seed=seed, batches=batches, threads=threads,
                                   repeats=repeats, on_candidate=on_candidate)
    if json_out:
        _print_json({**(next(r["record"] for r in found.rows if r["status"] == "chosen") if found.path else {}),
                     "baseline": found.baseline, "chosen": found.chosen, "candidates": found.rows})
    else:
        out.print(ladder_table(found.baseline, found.rows, max_drop=max_drop, objective=objective))
    if found.path is None:
        raise ConfigError(f"no candidate stays within --max-drop {max_drop:g}; nothing written. Raise the budget "
                          "or pass --ladder with milder recipes")
    err.print(f"wrote {output}: {found.chosen}")


@app.command()
def export(
    model_path: str = typer.Argument(..., metavar="MODEL", help="The .wlz model to export."),
    output: Path = typer.Option(..., "-o", "--output", help="The .onnx file to write."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    int8: bool = typer.Option(False, "--int8", help="Static int8 (QDQ), calibrated on --dataset."),
    dataset: str | None = DatasetOpt, data_dir: str | None = DataDirOpt, target: str | None = TargetOpt,
    task: str | None = TaskOpt, trust_code: bool = TrustOpt, force: bool = ForceOpt,
):
    """Export a model to ONNX (fp32, or int8 with calibration data)."""
    from . import api

    if fmt != "onnx":
        raise ConfigError(f"--format {fmt!r} unknown; use onnx")
    _check_output(output, force, Path(model_path))
    source = api.load(model_path, trust_code=trust_code)
    data = _dataset(dataset, data_dir, target, task, source.meta) if int8 else None
    api.export(source, output, int8=int8, dataset=data)
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
    """Show what a model file holds: architecture, data set, recipe, and per-layer MACs."""
    from . import api
    from .measurement.ops import count_macs, count_params
    from .measurement.record import layer_weight_bits

    loaded = api.load(model_path, trust_code=trust_code)
    module = api.deployable_module(loaded.module)
    params, nonzero = count_params(module)
    ops = count_macs(module, loaded.input_shape)
    bits = layer_weight_bits(loaded.module)
    named = dict(module.named_modules())
    for layer in ops["layers"]:
        weight = getattr(named.get(layer["name"]), "weight", None)
        if weight is not None:
            layer["nonzero"] = int((weight != 0).sum())
        layer["bits"] = bits.get(layer["name"], 32 if weight is not None else None)
    info = {"file": model_path, "size_bytes": Path(model_path).stat().st_size, "model": loaded.spec,
            "task": loaded.task, "dataset": (loaded.meta.get("dataset") or {}).get("name"),
            "seed": loaded.meta.get("seed"), "recipe": loaded.recipe, "params": params, "nonzero_params": nonzero,
            "macs": ops["total"], "layers": ops["layers"]}
    if json_out:
        _print_json(info)
        return
    from .report import layer_table

    out.print(f"[bold]{model_path}[/]: {loaded.name} for {info['dataset']} ({loaded.task}), "
              f"{params:,} params ({nonzero:,} non-zero), {ops['total']:,} MACs/sample, "
              f"recipe: {[s['technique'] for s in loaded.recipe] or 'none'}")
    out.print(layer_table(ops["layers"]))


@app.command(name="list")
def list_registered(what: str = typer.Argument("all", help="models, datasets, techniques, recipes or all.")):
    """List the registered models, data sets, techniques and shipped recipes."""
    from .data import list_datasets
    from .models import list_models
    from .recipe import shipped_recipes
    from .techniques import list_techniques

    tables = {"models": list_models() + ["package.module:factory"], "datasets": list_datasets() + ["csv:PATH"],
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


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    try:
        app()  # standalone mode: usage errors print themselves and exit 2
    except WattlessError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
