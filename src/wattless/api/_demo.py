"""``wattless demo``: the whole loop on built-in data in about a minute on 2 cores.

Trains an MLP on scikit-learn's digits, makes an int8 ONNX Runtime deployment and an 80%-pruned,
fine-tuned variant, measures all three the same way, and writes a report with a Pareto plot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data import load_dataset
from ..io import save
from ..measurement.latency import time_models
from ..measurement.record import measure_file
from ._compress import compress
from ._demo_folder import check_demo_folder, record_demo_files
from ._models import train

DEMO_STEPS = ["prune.magnitude:sparsity=0.8,scope=global,schedule=oneshot,finetune_epochs=10,lr=0.001"]
DEMO_ENGINES = ("torch", "onnxruntime")
NOTES = [
    "Latency: the three variants are timed together in alternating rounds after warm-up, at 1 thread, so load on the "
    "machine hits them alike; the median of the per-round medians, ± half their interquartile range, on the fastest "
    "engine per variant. Differences inside that spread are noise.",
    "int8 accuracy comes from running the int8 model in ONNX Runtime, not from a simulation.",
    "Unstructured pruning makes the file smaller (zeros compress) but gives no speed-up in dense engines.",
]


def run_demo(out_dir: str | Path = "runs/demo", *, log: Callable[[str], None] | None = None,
             epochs: int = 30, repeats: int = 50, force: bool = False) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Run the demo; returns the three records and the written files (report, results, plot).

    Refuses (ConfigError, before any work) a folder holding anything but the demo's own unchanged files, unless
    ``force``; see :mod:`._demo_folder`."""
    from ..report import write_results

    say = log or (lambda _msg: None)
    out_dir = Path(out_dir)
    check_demo_folder(out_dir, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset("digits")
    say(f"training an MLP on digits ({len(data.y_train)} training samples, {epochs} epochs)")
    model = train("mlp", data, model_kwargs={"hidden": [256, 128]}, epochs=epochs, seed=0)
    fp32_path = out_dir / "fp32.wlz"
    save(model, fp32_path)
    record_demo_files(out_dir, fp32_path)
    say("int8: static QDQ quantization calibrated on training data, run in ONNX Runtime")
    int8_path = compress(model, data, out_dir / "int8.onnx", int8=True, measure_result=False, force=True).path
    record_demo_files(out_dir, int8_path, _steps_file(int8_path))
    say("pruned: 80% of weights removed by global magnitude, then fine-tuned")
    pruned_path = compress(model, data, out_dir / "pruned80.wlz", steps=DEMO_STEPS, measure_result=False,
                           force=True).path
    record_demo_files(out_dir, pruned_path, _steps_file(pruned_path))
    options = {"batches": (1, 256), "threads": 1, "repeats": repeats}
    variants = {"fp32": fp32_path, "int8": int8_path, "pruned80": pruned_path}
    records = []
    for name, path in variants.items():
        say(f"measuring {name}")
        records.append({**measure_file(path, data, engines=DEMO_ENGINES, timed=False, **options), "name": name})
    say("timing the three variants together, in alternating rounds")
    timed = time_models(variants, data, engines=DEMO_ENGINES, **options)
    for record in records:
        record["latency_ms"] = timed[record["name"]]
    files = write_results(records, out_dir, title="wattless demo: MLP on digits", notes=[energy_note(records), *NOTES])
    record_demo_files(out_dir, *files.values())
    return records, files


def _steps_file(path: Path) -> Path:
    return path.with_name(path.name + ".steps.json")


def energy_note(records: list[dict[str, Any]]) -> str:
    """What the energy column is, read from the records: metered, or estimated (and why no meter was used)."""
    from ..measurement.provenance import provenance_of

    kinds = {provenance_of(record, "energy_j_per_sample") for record in records}
    methods = sorted({record["energy_j_per_sample"]["method"] for record in records})
    if kinds == {"measured"}:
        return f"Energy is measured with the {', '.join(methods)} meter, idle power subtracted."
    refused = [error for r in records if (error := r["energy_j_per_sample"].get("meter_error"))]
    why = f"the meter refused: {refused[0]}" if refused else "no energy meter was available to wattless here"
    table = " priced with 45 nm figures (Horowitz, ISSCC 2014)" if methods == ["estimate-45nm"] else ""
    return (f"Energy is an analytical estimate ({', '.join(methods)}) from operation and memory-access "
            f"counts{table}, not a measurement: {why}.")
