"""``wattless train``: train a model and write it to a .wlz file."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import api
from ..report.format import format_bytes
from ._app import (
    CountryOpt,
    DataDirOpt,
    ForceOpt,
    GridOpt,
    JsonOpt,
    ModelArgOpt,
    QuietOpt,
    TargetOpt,
    TaskOpt,
    TrustOpt,
    app,
    data_options,
    footprint_summary,
    out,
    print_json,
)
from ._progress import EpochProgress


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
    model_arg: list[str] | None = ModelArgOpt,
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, force: bool = ForceOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
    grid: float | None = GridOpt, carbon_country: str | None = CountryOpt,
):
    """Train a model and write it to a .wlz file; report the training's footprint (time, energy, CO2e) on stderr."""
    config = api.train_config(epochs=epochs, seed=seed, lr=lr, batch_size=batch_size, optimizer=optimizer,
                              schedule=schedule, patience=patience, warmup_epochs=warmup_epochs,
                              label_smoothing=label_smoothing, augment=augment or (), crop_padding=crop_padding,
                              cutout=cutout)
    with EpochProgress(config.epochs, quiet or json_out) as on_epoch:
        result = api.train_file(model, dataset, output, config=config, model_kwargs=api.parse_model_args(model_arg),
                                trust_code=trust_code, force=force, grid_intensity=grid, carbon_country=carbon_country,
                                on_epoch=on_epoch, **data_options(data_dir, target, task))
    footprint_summary(result.footprint, quiet)
    if json_out:
        print_json(result.as_dict())
        return
    metric = "accuracy" if "accuracy" in result.test else "rmse"
    value, meta = result.test[metric], result.model.meta
    shown = f"{value * 100:.2f}%" if metric == "accuracy" else f"{value:.4g}"
    out.print(f"trained {model} on {meta['dataset']['name']}: test {metric} {shown}, {meta['train']['epochs_run']} "
              f"epochs, wrote {output} ({format_bytes(result.size_bytes)})", markup=False, highlight=False)
