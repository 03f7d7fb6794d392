"""Foundation study: fp32 vs int8 (ONNX Runtime) for LeNet-300-100 and LeNet-5 on Fashion-MNIST.

Trains each model (10 epochs, seed 0), deploys it as static int8 QDQ ONNX, and measures both with
the same `measure` code, 1 thread, batch 1 and 256, in the same run. Targets are from issue 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import wattless
from wattless.report.format import format_bytes

MODELS = ("lenet300", "lenet5")
TARGETS = {"lenet300": 0.885, "lenet5": 0.895}


def _latency(record: dict[str, Any], engine: str, precision: str, batch: int) -> float | None:
    for row in record["latency_ms"]:
        if (row["engine"], row["precision"], row["batch"]) == (engine, precision, batch):
            return row["median"]
    return None


def run(out_dir: Path, *, epochs: int = 10, repeats: int = 200, train_threads: int = 2) -> dict[str, Any]:
    """Train, deploy and measure each model; returns the records and a Markdown section."""
    data = wattless.load_dataset("fashion-mnist")
    rows, records = [], []
    for name in MODELS:
        torch.set_num_threads(train_threads)
        model = wattless.train(name, data, epochs=epochs, seed=0)
        fp32_path = out_dir / f"{name}.wlz"
        wattless.save(model, fp32_path)
        int8_path = wattless.compress(model, data, out_dir / f"{name}.int8.onnx", int8=True)
        fp32 = wattless.measure(fp32_path, data, threads=1, repeats=repeats, engines=("torch", "onnxruntime"))
        int8 = wattless.measure(int8_path, data, threads=1, repeats=repeats)
        records += [{"name": f"{name} fp32", **fp32}, {"name": f"{name} int8", **int8}]
        rows.append(_row(name, fp32, int8))
    return {"records": records, "markdown": _markdown(rows, data.describe()["sizes"], epochs)}


def _row(name: str, fp32: dict, int8: dict) -> dict[str, Any]:
    row = {"model": name, "fp32_acc": fp32["accuracy"], "int8_acc": int8["accuracy"],
           "fp32_file": fp32["size_bytes_fp32"], "int8_file": int8["size_bytes"]}
    for batch in (1, 256):
        eager = _latency(fp32, "torch", "fp32", batch)
        row[f"b{batch}"] = {"torch": eager, "ort_fp32": _latency(fp32, "onnxruntime", "fp32", batch),
                            "ort_int8": _latency(int8, "onnxruntime", "int8", batch)}
    return row


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _markdown(rows: list[dict[str, Any]], sizes: dict[str, int], epochs: int) -> str:
    lines = [
        "## Foundation: fp32 vs int8 on Fashion-MNIST",
        "",
        f"Fashion-MNIST split {sizes['train']}/{sizes['val']}/{sizes['test']} (train/val/test), {epochs} epochs, "
        "Adam, cosine schedule, seed 0. Accuracy on the 10,000 test images; int8 accuracy from running the "
        "int8 ONNX model in ONNX Runtime. Latency: median ms per batch, 1 thread, after warm-up.",
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
        for batch in (1, 256):
            t = r[f"b{batch}"]
            lines.append(f"| {r['model']} | {batch} | {t['torch']:.4f} | {t['ort_fp32']:.4f} | {t['ort_int8']:.4f} "
                         f"| {t['torch'] / t['ort_int8']:.2f}x | {t['ort_fp32'] / t['ort_int8']:.2f}x |")
    lines += ["", "Targets (issue 3):", ""]
    for r in rows:
        target = TARGETS[r["model"]]
        drop = (r["fp32_acc"] - r["int8_acc"]) * 100
        ratio = r["int8_file"] / r["fp32_file"]
        lines.append(f"- {r['model']}: fp32 accuracy >= {target*100:.1f}%: {r['fp32_acc']*100:.2f}% "
                     f"({_check(r['fp32_acc'] >= target)}); int8 within 0.3 points: {drop:.2f} "
                     f"({_check(drop <= 0.3)}); int8 file <= 0.27x: {ratio:.3f}x ({_check(ratio <= 0.27)})")
    lenet300 = next(r for r in rows if r["model"] == "lenet300")
    s1 = lenet300["b1"]["torch"] / lenet300["b1"]["ort_int8"]
    s256 = lenet300["b256"]["torch"] / lenet300["b256"]["ort_int8"]
    lines.append(f"- lenet300 int8 vs torch fp32: >= 2.5x at batch 1: {s1:.2f}x ({_check(s1 >= 2.5)}); "
                 f">= 3x at batch 256: {s256:.2f}x ({_check(s256 >= 3)})")
    lenet5 = next((r for r in rows if r["model"] == "lenet5"), None)
    if lenet5:
        for batch in (1, 256):
            t = lenet5[f"b{batch}"]
            best = min(("torch fp32", t["torch"]), ("ORT fp32", t["ort_fp32"]), ("ORT int8", t["ort_int8"]),
                       key=lambda kv: kv[1])
            lines.append(f"- lenet5 at batch {batch}: fastest engine is {best[0]} ({best[1]:.4f} ms); "
                         f"int8 is {t['ort_fp32'] / t['ort_int8']:.2f}x the speed of ORT fp32")
    return "\n".join(lines) + "\n"
