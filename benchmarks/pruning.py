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

from targets import Target, verdict

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


MEASURED = "measured"
"""Every figure here is measured in the run: accuracy by running the model, size by stat-ing its file, MACs by
counting the deployed module's operations, speed-ups from timed latencies."""
PRUNE90_DROP = Target("90% unstructured drop (points)", "<=", 0.5)
PRUNE95_DROP = Target("95% unstructured drop (points)", "<=", 1.0)
STRUCT300_SPEEDUP = Target("LeNet-300-100 structured 50% speed-up at batch 256 (both engines)", ">=", 1.8)
STRUCT300_DROP = Target("LeNet-300-100 structured 50% drop (points)", "<=", 1.0)
STRUCT5_SPEEDUP = Target("LeNet-5 structured 50% speed-up at batch 256 (both engines)", ">=", 1.5)
STRUCT5_DROP = Target("LeNet-5 structured 50% drop (points)", "<=", 1.5)
SVD_MACS = Target("SVD fewer MACs", ">=", 2.0)
SVD_DROP = Target("SVD drop (points)", "<=", 1.0)
KMEANS_DROP = Target("k-means 16 drop (points)", "<=", 0.5)
DEEP_RATIO = Target("prune 90% + k-means 16, times smaller", ">=", 35.0)
DEEP_DROP = Target("prune 90% + k-means 16 drop (points)", "<=", 1.0)
BATCHES = ((1, 200), (256, 20))
"""(batch size, timed runs per round)."""
THREADS = 1


def _latencies(original, variant, input_shape, rounds: int) -> dict[str, float]:
    """Speed-up of ``variant`` over ``original`` (both fp32 modules) per engine and batch."""
    a, b = deployable_module(original).eval(), deployable_module(variant).eval()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_onnx(m, input_shape, Path(tmp) / f"{i}.onnx") for i, m in enumerate((a, b))]
        for batch, repeats in BATCHES:
            timing = {"batch": batch, "repeats": repeats, "threads": THREADS}
            timers = {
                "torch_a": functools.partial(time_torch, a, input_shape, **timing),
                "torch_b": functools.partial(time_torch, b, input_shape, **timing),
                "ort_a": functools.partial(time_onnx, paths[0], input_shape, **timing),
                "ort_b": functools.partial(time_onnx, paths[1], input_shape, **timing),
            }
            t = time_interleaved(timers, rounds=rounds)
            out[f"torch_b{batch}"] = t["torch_a"]["median"] / t["torch_b"]["median"]
            out[f"ort_b{batch}"] = t["ort_a"]["median"] / t["ort_b"]["median"]
    return out


def run(out_dir: Path, *, rounds: int = 5) -> dict[str, Any]:
    data = wattless.load_dataset("fashion-mnist")
    rows, base = [], {}
    for name, variants in VARIANTS.items():
        model = wattless.load(out_dir / f"{name}.wlz")
        base_acc = evaluate(model.module, data.X_test, data.y_test, "classification")["accuracy"]
        base[name] = base_acc
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
    return {"rows": rows, "markdown": _markdown(rows, base, rounds)}


def _find(rows, model, key):
    return next(r for r in rows if r["model"] == model and r["key"] == key)


def _markdown(rows: list[dict[str, Any]], base: dict[str, float], rounds: int) -> str:
    names = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5"}
    accuracies = ", ".join(f"{names.get(name, name)} {acc * 100:.2f}%" for name, acc in base.items())
    timed = ", ".join(f"{repeats} runs at batch {batch}" for batch, repeats in BATCHES)
    lines = ["## Pruning, factorization and weight sharing on Fashion-MNIST", "",
             f"From the foundation study's fp32 models (test accuracy: {accuracies}). Size: the variant's "
             ".wlz file (sparse tensors and codes packed, entropy-coded) vs the fp32 state_dict file. Speed-up: "
             f"original / variant latency, same engine and batch, {THREADS} thread{'s' if THREADS > 1 else ''}, "
             f"{rounds} alternating rounds of {timed} (medians). Time: the technique including its fine-tuning. "
             "Every variant is a fixed recipe: no choice is made, so no figure is selected on the test split.", "",
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
    s300_b256 = min(s300["torch_b256"], s300["ort_b256"])
    s5_b256 = min(s5["torch_b256"], s5["ort_b256"])
    m = MEASURED
    lines += ["", "Targets (issue 5):", "",
              f"- LeNet-300-100, 90% unstructured with fine-tuning, drop {PRUNE90_DROP.op} "
              f"{PRUNE90_DROP.threshold:g}: {p90['drop']:.2f} ({verdict(PRUNE90_DROP, p90['drop'], m)}); 95%, drop "
              f"{PRUNE95_DROP.op} {PRUNE95_DROP.threshold:g}: {p95['drop']:.2f} "
              f"({verdict(PRUNE95_DROP, p95['drop'], m)}). On dense engines (no sparse kernels), 90%: torch b256 "
              f"{p90['torch_b256']:.2f}x, ORT b256 {p90['ort_b256']:.2f}x (no speed-up target).",
              f"- LeNet-300-100 with half the hidden neurons removed: torch b256 {s300['torch_b256']:.2f}x, ORT b256 "
              f"{s300['ort_b256']:.2f}x ({STRUCT300_SPEEDUP.op} {STRUCT300_SPEEDUP.threshold:g}x: "
              f"{verdict(STRUCT300_SPEEDUP, s300_b256, m)}), drop {s300['drop']:.2f} ({STRUCT300_DROP.op} "
              f"{STRUCT300_DROP.threshold:g}: {verdict(STRUCT300_DROP, s300['drop'], m)})",
              f"- LeNet-5 with half the filters removed: torch b256 {s5['torch_b256']:.2f}x, ORT b256 "
              f"{s5['ort_b256']:.2f}x ({STRUCT5_SPEEDUP.op} {STRUCT5_SPEEDUP.threshold:g}x: "
              f"{verdict(STRUCT5_SPEEDUP, s5_b256, m)}), drop {s5['drop']:.2f} ({STRUCT5_DROP.op} "
              f"{STRUCT5_DROP.threshold:g}: {verdict(STRUCT5_DROP, s5['drop'], m)})",
              f"- SVD on LeNet-300-100: {svd['macs_ratio']:.2f}x fewer MACs ({SVD_MACS.op} {SVD_MACS.threshold:g}: "
              f"{verdict(SVD_MACS, svd['macs_ratio'], m)}), drop {svd['drop']:.2f} ({SVD_DROP.op} "
              f"{SVD_DROP.threshold:g}: {verdict(SVD_DROP, svd['drop'], m)})",
              f"- k-means sharing, 16 centroids: drop {km['drop']:.2f} ({KMEANS_DROP.op} {KMEANS_DROP.threshold:g}: "
              f"{verdict(KMEANS_DROP, km['drop'], m)})",
              f"- 90% pruning + 16-centroid sharing, packed: {deep['ratio']:.1f}x smaller than the fp32 file "
              f"({DEEP_RATIO.op} {DEEP_RATIO.threshold:g}x: {verdict(DEEP_RATIO, deep['ratio'], m)}), drop "
              f"{deep['drop']:.2f} ({DEEP_DROP.op} {DEEP_DROP.threshold:g}: {verdict(DEEP_DROP, deep['drop'], m)})",
              ""]
    return "\n".join(lines) + "\n"
