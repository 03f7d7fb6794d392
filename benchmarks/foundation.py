"""Foundation study: fp32 vs int8 (ONNX Runtime) for LeNet-300-100 and LeNet-5 on Fashion-MNIST.

Trains each model (10 epochs, seed 0), deploys it as static int8 QDQ ONNX, and measures both with
the same `measure` code, 1 thread, batch 1 and 256, in the same run. Targets are from issue 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from targets import Target, derived, provenance_of, verdict

import wattless
from wattless.report.format import format_bytes

MODELS = ("lenet300", "lenet5")
THREADS = 1
BATCHES = (1, 256)
FP32_ACCURACY = {"lenet300": Target("lenet300 fp32 test accuracy", ">=", 0.885),
                 "lenet5": Target("lenet5 fp32 test accuracy", ">=", 0.895)}
INT8_DROP = Target("int8 test-accuracy drop (points)", "<=", 0.3)
INT8_FILE = Target("int8 file / fp32 state_dict file", "<=", 0.27)
SPEEDUP = {1: Target("lenet300 ORT int8 vs torch fp32 speed-up at batch 1", ">=", 2.5),
           256: Target("lenet300 ORT int8 vs torch fp32 speed-up at batch 256", ">=", 3.0)}


def _latency(record: dict[str, Any], engine: str, precision: str, batch: int) -> float | None:
    for row in record["latency_ms"]:
        if (row["engine"], row["precision"], row["batch"]) == (engine, precision, batch):
            return row["median"]
    return None


def run(out_dir: Path, *, epochs: int = 10, repeats: int = 200, train_threads: int = 2) -> dict[str, Any]:
    """Train, deploy and measure each model; returns the records and a Markdown section."""
    data = wattless.load_dataset("fashion-mnist")
    rows, records, configs = [], [], {}
    for name in MODELS:
        torch.set_num_threads(train_threads)
        model = wattless.train(name, data, epochs=epochs, seed=0)
        configs[name] = model.meta["train"]["config"]
        fp32_path = out_dir / f"{name}.wlz"
        wattless.save(model, fp32_path)
        int8_path = wattless.compress(model, data, out_dir / f"{name}.int8.onnx", int8=True, force=True,
                                      measure_result=False).path
        fp32 = wattless.measure(fp32_path, data, threads=THREADS, repeats=repeats, batches=BATCHES,
                                engines=("torch", "onnxruntime"))
        int8 = wattless.measure(int8_path, data, threads=THREADS, repeats=repeats, batches=BATCHES)
        records += [{"name": f"{name} fp32", **fp32}, {"name": f"{name} int8", **int8}]
        rows.append(_row(name, fp32, int8))
    return {"records": records, "markdown": _markdown(rows, data.describe()["sizes"], configs, repeats)}


def _row(name: str, fp32: dict, int8: dict) -> dict[str, Any]:
    row = {"model": name, "fp32_acc": fp32["accuracy"], "int8_acc": int8["accuracy"],
           "fp32_file": fp32["size_bytes_fp32"], "int8_file": int8["size_bytes"],
           "acc_kind": provenance_of(fp32, "accuracy"),
           "drop_kind": derived(provenance_of(fp32, "accuracy"), provenance_of(int8, "accuracy")),
           "ratio_kind": derived(provenance_of(int8, "size_bytes"), provenance_of(fp32, "size_bytes_fp32")),
           "speed_kind": derived(provenance_of(fp32, "latency_ms"), provenance_of(int8, "latency_ms"))}
    for batch in BATCHES:
        eager = _latency(fp32, "torch", "fp32", batch)
        row[f"b{batch}"] = {"torch": eager, "ort_fp32": _latency(fp32, "onnxruntime", "fp32", batch),
                            "ort_int8": _latency(int8, "onnxruntime", "int8", batch)}
    return row


def _training(configs: dict[str, dict[str, Any]]) -> str:
    """How the models were trained, read from their configs (one phrase when they agree)."""
    def phrase(c: dict[str, Any]) -> str:
        return (f"{c['epochs']} epoch{'s' if c['epochs'] != 1 else ''}, {c['optimizer'].capitalize()}, "
                f"{c['schedule']} schedule, seed {c['seed']}")
    phrases = {name: phrase(config) for name, config in configs.items()}
    if len(set(phrases.values())) == 1:
        return next(iter(phrases.values()))
    return "; ".join(f"{name}: {text}" for name, text in phrases.items())


def _markdown(rows: list[dict[str, Any]], sizes: dict[str, int], configs: dict[str, dict[str, Any]],
              repeats: int) -> str:
    lines = [
        "## Foundation: fp32 vs int8 on Fashion-MNIST",
        "",
        f"Fashion-MNIST split {sizes['train']}/{sizes['val']}/{sizes['test']} (train/val/test), "
        f"{_training(configs)}. Accuracy on the {sizes['test']:,} test images; int8 accuracy from running the "
        f"int8 ONNX model in ONNX Runtime. Latency: median ms per batch of {repeats} runs, {THREADS} thread"
        f"{'s' if THREADS > 1 else ''}, after warm-up. No choice is made here, so nothing is selected on the "
        "test split.",
        "",
        "| model | fp32 acc | int8 acc | drop (pts) | fp32 file | int8 file | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        drop = (r["fp32_acc"] - r["int8_acc"]) * 100
        lines.append(f"| {r['model']} | {r['fp32_acc']*100:.2f}% | {r['int8_acc']*100:.2f}% | {drop:.2f} | "
                     f"{format_bytes(r['fp32_file'])} | {format_bytes(r['int8_file'])} | "
                     f"{r['int8_file'] / r['fp32_file']:.3f}x |")
    lines += ["", "| model | batch | torch fp32 | ORT fp32 | ORT int8 | int8 vs torch | int8 vs ORT fp32 |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        for batch in BATCHES:
            t = r[f"b{batch}"]
            lines.append(f"| {r['model']} | {batch} | {t['torch']:.4f} | {t['ort_fp32']:.4f} | {t['ort_int8']:.4f} "
                         f"| {t['torch'] / t['ort_int8']:.2f}x | {t['ort_fp32'] / t['ort_int8']:.2f}x |")
    lines += ["", "Targets (issue 3):", ""]
    for r in rows:
        target = FP32_ACCURACY[r["model"]]
        drop = (r["fp32_acc"] - r["int8_acc"]) * 100
        ratio = r["int8_file"] / r["fp32_file"]
        lines.append(f"- {r['model']}: fp32 accuracy {target.op} {target.threshold * 100:.1f}%: "
                     f"{r['fp32_acc'] * 100:.2f}% ({verdict(target, r['fp32_acc'], r['acc_kind'])}); int8 drop "
                     f"{INT8_DROP.op} {INT8_DROP.threshold:g} points: {drop:.2f} "
                     f"({verdict(INT8_DROP, drop, r['drop_kind'])}); int8 file {INT8_FILE.op} "
                     f"{INT8_FILE.threshold:g}x: {ratio:.3f}x ({verdict(INT8_FILE, ratio, r['ratio_kind'])})")
    lenet300 = next(r for r in rows if r["model"] == "lenet300")
    parts = []
    for batch, target in SPEEDUP.items():
        speedup = lenet300[f"b{batch}"]["torch"] / lenet300[f"b{batch}"]["ort_int8"]
        parts.append(f"{target.op} {target.threshold:g}x at batch {batch}: {speedup:.2f}x "
                     f"({verdict(target, speedup, lenet300['speed_kind'])})")
    lines.append("- lenet300 int8 vs torch fp32 (measured latency): " + "; ".join(parts))
    lenet5 = next((r for r in rows if r["model"] == "lenet5"), None)
    if lenet5:
        for batch in BATCHES:
            t = lenet5[f"b{batch}"]
            best = min(("torch fp32", t["torch"]), ("ORT fp32", t["ort_fp32"]), ("ORT int8", t["ort_int8"]),
                       key=lambda kv: kv[1])
            lines.append(f"- lenet5 at batch {batch}: fastest engine in this run is {best[0]} ({best[1]:.4f} ms); "
                         f"int8 is {t['ort_fp32'] / t['ort_int8']:.2f}x the speed of ORT fp32")
    return "\n".join(lines) + "\n"
