"""``wattless measure`` and ``wattless inspect``: one model's record, or what its file holds per layer."""

from __future__ import annotations

import typer

from .. import api
from ..report import file_bytes_table, layer_table, record_table
from ..report.format import format_energy
from ._app import (
    BatchOpt,
    DataDirOpt,
    DatasetOpt,
    JsonOpt,
    ModelArgOpt,
    RepeatsOpt,
    TargetOpt,
    TaskOpt,
    ThreadsOpt,
    TrustOpt,
    app,
    data_options,
    out,
    print_json,
)


@app.command()
def measure(
    model_path: str = typer.Argument(..., metavar="MODEL", help="A .wlz, .onnx, .safetensors or .pt file."),
    dataset: str | None = DatasetOpt, batch: str = BatchOpt, threads: int = ThreadsOpt, repeats: int = RepeatsOpt,
    engines: str = typer.Option("torch,onnxruntime,int8", help="Comma list of engines (see `wattless list "
                                "engines`): torch, onnxruntime, int8 (ONNX Runtime static int8), native (the "
                                "model exported to C and compiled here)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Architecture of plain weights (.pt)."),
    model_arg: list[str] | None = ModelArgOpt,
    data_dir: str | None = DataDirOpt, target: str | None = TargetOpt, task: str | None = TaskOpt,
    trust_code: bool = TrustOpt, json_out: bool = JsonOpt,
    simulate: str | None = typer.Option(None, help="Comma list of accelerator designs to simulate with ZigZag "
                                        "(extra hw): edge_tpu_like, tpu_like, eyeriss_like, ascend_like, "
                                        "tesla_npu_like, meta_prototype, or HARDWARE.yaml[:MAPPING.yaml]."),
    clock_mhz: float | None = typer.Option(None, help="The designs' clock (MHz), to give latency in seconds."),
    simulate_partial: bool = typer.Option(False, help="Leave out layers ZigZag cannot parse (the record names "
                                          "them) instead of failing."),
):
    """Measure accuracy, size, MACs, latency and energy of a model file; every figure says how it was obtained."""
    record = api.measure(model_path, dataset, engines=engines, batches=batch, threads=threads, repeats=repeats,
                         architecture=model, model_kwargs=api.parse_model_args(model_arg), trust_code=trust_code,
                         simulate=simulate, clock_mhz=clock_mhz, simulate_partial=simulate_partial,
                         **data_options(data_dir, target, task))
    if json_out:
        print_json(record)
        return
    out.print(record_table(record))


@app.command()
def inspect(
    model_path: str = typer.Argument(..., metavar="MODEL", help="A .wlz model file."),
    trust_code: bool = TrustOpt, json_out: bool = JsonOpt,
    simulate: str | None = typer.Option(None, help="One accelerator design (see measure --simulate): each layer's "
                                        "simulated energy split into compute, on-chip and off-chip memory."),
    clock_mhz: float | None = typer.Option(None, help="The design's clock (MHz)."),
):
    """Show what a model file holds: architecture, data set, recipe, and per layer its shape, parameters,
    non-zeros, bits, bytes in the file, MACs and estimated energy (45 nm, batch 1) with its share of the total; and
    where the file's bytes go (header; per layer positions, codes, tables, biases) against the entropy floor."""
    info = api.inspect(model_path, trust_code=trust_code, simulate=simulate, clock_mhz=clock_mhz)
    if json_out:
        print_json(info)
        return
    energy = info["energy_j_per_sample"]
    steps = [step["technique"] for step in info["recipe"]] or "none"
    out.print(f"[bold]{model_path}[/]: {info['model']['name']} for {info['dataset']} ({info['task']}), "
              f"{info['params']:,} params ({info['nonzero_params']:,} non-zero), {info['macs']:,} MACs/sample, "
              f"{format_energy(energy['value'])}/sample ({energy['method']}), MicroNet score "
              f"{info['micronet_score']:.3f} vs this architecture dense fp32 (2.0), recipe: {steps}")
    if info["simulated"]:
        sim = info["simulated"]
        out.print(f"Simulated: {format_energy(sim['energy_j_per_sample'])}/sample, {sim['latency_cycles']:,.0f} cycles "
                  f"({sim['provenance']['by']}; sparsity not modelled; estimate columns: 45 nm)")
    out.print(layer_table(info["layers"]))
    out.print(file_bytes_table(info["file_bytes"]))
