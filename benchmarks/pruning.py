"""Pruning, factorization and weight sharing on Fashion-MNIST (issue 5), from the foundation fp32 models.

Each variant: test accuracy of the compressed nn.Module, size of its .wlz file (sparse tensors and
codes packed), MACs, and latency at batch 1 and 256 in PyTorch eager and ONNX Runtime fp32 against the
original model, timed in alternating rounds (medians of round medians, 1 thread). Unstructured
sparsity runs on dense engines, so no speed-up is expected there, and none is claimed.
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
from wattless.io import deployable_module
from wattless.measurement import count_macs, time_interleaved, time_onnx, time_torch
from wattless.measurement.record import fp32_state_dict_bytes
from wattless.report.format import format_bytes
from wattless.train import evaluate

VARIANTS = {
    "lenet300": {
        "prune90": ["prune.magnitude:sparsity=0.9,scope=global,schedule=gradual,finetune_epochs=6,lr=0.001"],
        "prune95": ["prune.magnitude:sparsity=0.95,scope=global,schedule=gradual,finetune_epochs=8,lr=0.001"],
        "structured50": ["prune.structured:ratio=0.5,importance=taylor,finetune_epochs=3"],
        "svd": ["factorize.svd:ratio=0.25,finetune_epochs=3"],
        "kmeans16": ["share.kmeans:clusters=16,finetune_epochs=1"],
        "prune90+kmeans16": ["prune.magnitude:sparsity=0.9,scope=global,schedule=gradual,finetune_epochs=6,lr=0.001",
                             "share.kmeans:clusters=16,finetune_epochs=1"],
        "nm2:4": ["prune.nm:n=2,m=4,finetune_epochs=3,lr=0.001"],
    },
    "lenet5": {
        "structured50": ["prune.structured:ratio=0.5,importance=thinet,finetune_epochs=6"],
        "tucker": ["factorize.tucker:ratio=0.5,finetune_epochs=3"],
        "cp": ["factorize.cp:ratio=0.5,finetune_epochs=3"],
    },
}


def _latencies(original, variant, input_shape, rounds: int) -> dict[str, float]:
    """Speed-up of ``variant`` over ``original`` (both fp32 modules) per engine and batch."""
    a, b = deployable_module(original).eval(), deployable_module(variant).eval()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_onnx(m, input_shape, Path(tmp) / f"{i}.onnx") for i, m in enumerate((a, b))]
        for batch, repeats in ((1, 200), (256, 20)):
            timers = {
                "torch_a": functools.partial(time_torch, a, input_shape, batch=batch, repeats=repeats),
                "torch_b": functools.partial(time_torch, b, input_shape, batch=batch, repeats=repeats),
                "ort_a": functools.partial(time_onnx, paths[0], input_shape, batch=batch, repeats=repeats),
                "ort_b": functools.partial(time_onnx, paths[1], input_shape, batch=batch, repeats=repeats),
            }
            t = time_interleaved(timers, rounds=rounds)
            out[f"torch_b{batch}"] = t["torch_a"]["median"] / t["torch_b"]["median"]
            out[f"ort_b{batch}"] = t["ort_a"]["median"] / t["ort_b"]["median"]
    return out


def run(out_dir: Path, *, rounds: int = 5) -> dict[str, Any]:
    data = wattless.load_dataset("fashion-mnist")
    rows = []
    for name, variants in VARIANTS.items():
        model = wattless.load(out_dir / f"{name}.wlz")
        base_acc = evaluate(model.module, data.X_test, data.y_test, "classification")["accuracy"]
        base_macs = count_macs(deployable_module(model.module), model.input_shape)["total"]
        fp32_bytes = fp32_state_dict_bytes(model)
        for key, steps in variants.items():
            started = time.perf_counter()
            result = apply_steps(model, data, steps)
            seconds = time.perf_counter() - started
            accuracy = evaluate(result.module, data.X_test, data.y_test, "classification")["accuracy"]
            size = wattless.save(result, out_dir / f"{name}.{key}.wlz")
            macs = count_macs(deployable_module(result.module), result.input_shape)["total"]
            rows.append({"model": name, "key": key, "steps": steps, "accuracy": accuracy,
                         "drop": (base_acc - accuracy) * 100, "size": size, "ratio": fp32_bytes / size,
                         "macs_ratio": base_macs / macs, "seconds": seconds,
                         **_latencies(model.module, result.module, model.input_shape, rounds)})
    return {"rows": rows, "markdown": _markdown(rows)}


def _find(rows, model, key):
    return next(r for r in rows if r["model"] == model and r["key"] == key)


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["## Pruning, factorization and weight sharing on Fashion-MNIST", "",
             "From the foundation study's fp32 models (LeNet-300-100 89.51%, LeNet-5 89.65%). Size: the variant's "
             ".wlz file (sparse tensors and codes packed, entropy-coded) vs the fp32 state_dict file. Speed-up: "
             "original / variant latency, same engine and batch, 1 thread, 5 alternating rounds (medians). "
             "Time: the technique including its fine-tuning.", "",
             "| model | variant | steps | accuracy | drop (pts) | file | smaller | fewer MACs | torch b1 | "
             "torch b256 | ORT b1 | ORT b256 | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = " → ".join(f"`{s}`" for s in r["steps"])
        lines.append(f"| {r['model']} | {r['key']} | {steps} | {r['accuracy'] * 100:.2f}% | {r['drop']:.2f} | "
                     f"{format_bytes(r['size'])} | {r['ratio']:.1f}x | {r['macs_ratio']:.2f}x | "
                     f"{r['torch_b1']:.2f}x | {r['torch_b256']:.2f}x | {r['ort_b1']:.2f}x | {r['ort_b256']:.2f}x | "
                     f"{r['seconds']:.0f} |")
    p90, p95 = _find(rows, "lenet300", "prune90"), _find(rows, "lenet300", "prune95")
    s300, s5 = _find(rows, "lenet300", "structured50"), _find(rows, "lenet5", "structured50")
    svd, km = _find(rows, "lenet300", "svd"), _find(rows, "lenet300", "kmeans16")
    deep = _find(rows, "lenet300", "prune90+kmeans16")
    lines += ["", "Targets (issue 5):", "",
              f"- LeNet-300-100, 90% unstructured with fine-tuning, drop <= 0.5: {p90['drop']:.2f} "
              f"({_check(p90['drop'] <= 0.5)}); 95%, drop <= 1: {p95['drop']:.2f} ({_check(p95['drop'] <= 1)}). "
              f"Dense engines gain nothing from it: torch b256 {p90['torch_b256']:.2f}x, ORT b256 "
              f"{p90['ort_b256']:.2f}x.",
              f"- LeNet-300-100 with half the hidden neurons removed: torch b256 {s300['torch_b256']:.2f}x, ORT b256 "
              f"{s300['ort_b256']:.2f}x (>= 1.8x: {_check(min(s300['torch_b256'], s300['ort_b256']) >= 1.8)}), "
              f"drop {s300['drop']:.2f} (<= 1: {_check(s300['drop'] <= 1)})",
              f"- LeNet-5 with half the filters removed: torch b256 {s5['torch_b256']:.2f}x, ORT b256 "
              f"{s5['ort_b256']:.2f}x (>= 1.5x: {_check(min(s5['torch_b256'], s5['ort_b256']) >= 1.5)}), "
              f"drop {s5['drop']:.2f} (<= 1.5: {_check(s5['drop'] <= 1.5)})",
              f"- SVD on LeNet-300-100: {svd['macs_ratio']:.2f}x fewer MACs (>= 2: {_check(svd['macs_ratio'] >= 2)}), "
              f"drop {svd['drop']:.2f} (<= 1: {_check(svd['drop'] <= 1)})",
              f"- k-means sharing, 16 centroids: drop {km['drop']:.2f} (<= 0.5: {_check(km['drop'] <= 0.5)})",
              f"- 90% pruning + 16-centroid sharing, packed: {deep['ratio']:.1f}x smaller than the fp32 file "
              f"(>= 35x: {_check(deep['ratio'] >= 35)}), drop {deep['drop']:.2f} (<= 1: {_check(deep['drop'] <= 1)})",
              ""]
    return "\n".join(lines) + "\n"
