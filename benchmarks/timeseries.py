"""Time-series study (issue 9): a patch transformer on BasicMotions (UEA; 6 channels x 100 steps, 4 classes).

Trains `ts_transformer` (30 epochs, seed 0), then compares, as in the green-computing course's time-series
work: ONNX Runtime fp32, dynamic int8 (MatMul/Gemm weights int8, activations quantized on the fly) and static
int8 (QDQ), magnitude pruning with fine-tuning, distillation into a smaller transformer, and pruning +
distillation. Accuracy on the 40 test series (one series = 2.5 points), file size (vs the teacher's fp32
file), latency per sample at batch 1 and 40 (1 thread, all variants timed in the same alternating rounds),
estimated energy per sample.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import wattless
from wattless.api import apply_steps
from wattless.deploy import export_onnx
from wattless.deploy.dynamic import quantize_dynamic_int8
from wattless.io import deployable_module
from wattless.measurement import time_interleaved, time_onnx, time_torch
from wattless.report.format import format_bytes, format_energy

EPOCHS = 30
STUDENT = {"student": "ts_transformer", "student_kwargs": {"d_model": 48, "depth": 1, "heads": 4},
           "temperature": 2.0, "alpha": 0.5, "epochs": 100, "lr": 0.003}
PRUNE = "prune.magnitude:sparsity=0.5,scope=global,schedule=gradual,finetune_epochs=30,lr=0.001"
VARIANTS = {
    "pruned 50%": [PRUNE],
    "distilled (d_model 48, depth 1)": [("distill.hinton", STUDENT)],
    "distilled + pruned 50%": [("distill.hinton", STUDENT), PRUNE],
}
BATCHES = ((1, 200), (40, 50))


def _steps(steps: list) -> list:
    from wattless.techniques import make_config

    return [step if isinstance(step, str) else (step[0], make_config(step[0], step[1])) for step in steps]


def run(out_dir: Path, *, rounds: int = 7) -> dict[str, Any]:
    data = wattless.load_dataset("basic-motions")
    folder = out_dir / "timeseries"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    model = wattless.train("ts_transformer", data, epochs=EPOCHS, seed=0)
    train_s = time.perf_counter() - started
    base_path = folder / "ts_transformer.wlz"
    wattless.save(model, base_path)
    files: dict[str, Path] = {"fp32 (PyTorch / ORT)": base_path}
    fp32_onnx = wattless.export(model, folder / "fp32.onnx")  # carries the record metadata (fp32 size, ...)
    files["int8 dynamic (ORT)"] = quantize_dynamic_int8(fp32_onnx, folder / "int8-dynamic.onnx")
    files["int8 static QDQ (ORT)"] = wattless.compress(model, data, folder / "int8-static.onnx", int8=True)
    seconds = {"fp32 (PyTorch / ORT)": train_s}
    for name, steps in VARIANTS.items():
        began = time.perf_counter()
        variant = apply_steps(model, data, _steps(steps))
        seconds[name] = time.perf_counter() - began
        path = folder / f"{name.split()[0]}-{len(files)}.wlz"
        wattless.save(variant, path)
        files[name] = path
    rows = [_measure(name, path, data) | {"seconds": seconds.get(name)} for name, path in files.items()]
    _time_all(rows, data.input_shape, rounds)
    return {"rows": rows, "markdown": _markdown(rows)}


def _measure(name: str, path: Path, data) -> dict[str, Any]:
    engines = ("int8",) if path.suffix == ".onnx" else ("torch",)
    record = wattless.measure(path, data, batches=(), engines=engines)
    estimate = record.get("energy_estimate") or record["energy_j_per_sample"]
    row = {"name": name, "path": path, "accuracy": record["accuracy"], "size": record["size_bytes"],
           "fp32_size": record["size_bytes_fp32"], "energy": estimate["value"], "macs": record["macs"]}
    if path.suffix == ".wlz":
        row["module"] = deployable_module(wattless.load(path).module).eval()
    return row


def _time_all(rows: list[dict[str, Any]], input_shape, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            if "module" in row:
                row["onnx"] = export_onnx(row["module"], input_shape, Path(tmp) / f"{len(row['name'])}-{id(row)}.onnx")
        for batch, repeats in BATCHES:
            timers = {}
            for i, row in enumerate(rows):
                onnx_path = row.get("onnx", row["path"])
                timers[f"{i}/ort"] = functools.partial(time_onnx, onnx_path, input_shape, batch=batch, repeats=repeats)
                if "module" in row:
                    timers[f"{i}/torch"] = functools.partial(time_torch, row["module"], input_shape, batch=batch,
                                                             repeats=repeats)
            timed = time_interleaved(timers, rounds=rounds)
            for i, row in enumerate(rows):
                row[f"ort_b{batch}"] = timed[f"{i}/ort"]["median"] / batch
                row[f"torch_b{batch}"] = timed[f"{i}/torch"]["median"] / batch if f"{i}/torch" in timed else None


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _markdown(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    big = BATCHES[-1][0]
    lines = ["## Time series: a patch transformer on BasicMotions (issue 9)", "",
             f"`ts_transformer` (patches of 5 steps, d_model 64, 2 layers, 4 heads; {EPOCHS} epochs, seed 0) on "
             "BasicMotions (32 train / 8 validation / 40 test series; one test series = 2.5 points). Latency: ms "
             "per sample, medians of 7 alternating rounds, 1 thread; .wlz variants in PyTorch eager and exported "
             "to ONNX Runtime fp32, .onnx variants in ONNX Runtime. Speed-up vs fp32 ONNX Runtime at the same "
             "batch. Energy: 45 nm estimate. Distillation: Hinton soft targets into a d_model-48, 1-layer, "
             "4-head transformer (100 epochs); pruning: gradual magnitude pruning with 30 epochs of fine-tuning.", "",
             f"| variant | accuracy | Δ (pts) | file | smaller | torch b1 | ORT b1 | torch b{big} | ORT b{big} | "
             f"ORT speed-up b1 / b{big} | MACs | energy/sample | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        drop = (r["accuracy"] - base["accuracy"]) * 100
        build = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(
            f"| {r['name']} | {r['accuracy'] * 100:.1f}% | {drop:+.1f} | {format_bytes(r['size'])} | "
            f"{base['fp32_size'] / r['size']:.1f}x | {_ms(r['torch_b1'])} | {_ms(r['ort_b1'])} | "
            f"{_ms(r[f'torch_b{big}'])} | {_ms(r[f'ort_b{big}'])} | {base['ort_b1'] / r['ort_b1']:.2f}x / "
            f"{base[f'ort_b{big}'] / r[f'ort_b{big}']:.2f}x | {r['macs']:,} | {format_energy(r['energy'])} | "
            f"{build} |")
    dynamic, static = rows[1], rows[2]
    best = min((dynamic, static), key=lambda r: abs(r["accuracy"] - base["accuracy"]))
    lines += ["", "Targets (issue 9):", "",
              f"- fp32 test accuracy {base['accuracy'] * 100:.1f}% (>= 90%: "
              f"{'met' if base['accuracy'] >= 0.9 else '**missed**'}).",
              f"- int8 within 1 point: dynamic {(dynamic['accuracy'] - base['accuracy']) * 100:+.1f}, static "
              f"{(static['accuracy'] - base['accuracy']) * 100:+.1f} points ("
              f"{'met' if abs(best['accuracy'] - base['accuracy']) * 100 <= 1 else '**missed**'} by {best['name']}: "
              f"{base['ort_b1'] / best['ort_b1']:.2f}x at batch 1 and {base[f'ort_b{big}'] / best[f'ort_b{big}']:.2f}x "
              f"at batch {big} vs fp32 ONNX Runtime, file {base['fp32_size'] / best['size']:.1f}x smaller).", ""]
    return "\n".join(lines)
