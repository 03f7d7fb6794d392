"""Quantization targets on LeNet-300-100 / Fashion-MNIST (issue 4), from the foundation study's fp32 model.

Every variant is measured the same way: validation and test accuracy of the quantized nn.Module (which
computes exactly what its file stores), and the size of its packed .wlz file against the fp32 state_dict file.
The best PTQ method per bit width is chosen on the validation split; its test figures are what the targets
judge. When `quantize.adaround` is registered, AdaRound at 4, 3 and 2 bits joins the candidates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from targets import Target, choose_on_validation, verdict

import wattless
from wattless.api import apply_steps
from wattless.io import deployable_module
from wattless.measurement.record import fp32_state_dict_bytes, layer_weight_bits
from wattless.report.format import format_bytes
from wattless.train import evaluate

PTQ_METHODS = [
    {"method": "midrise"},
    {"method": "nearest", "landmarks": "uniform"},
    {"method": "nearest", "landmarks": "histogram"},
    {"method": "nearest", "landmarks": "normal"},
    {"method": "stochastic", "landmarks": "uniform"},
    {"method": "stochastic", "landmarks": "histogram"},
    {"method": "stochastic", "landmarks": "normal"},
]
NEAREST_UNIFORM = {"method": "nearest", "landmarks": "uniform"}
PTQ_BITS = (8, 4, 3, 2)
ADAROUND = "quantize.adaround"
ADAROUND_BITS = (4, 3, 2)
TRAIN_EPOCHS = 3
"""Fine-tuning epochs of QAT, ternary and binary."""
MIXED_BITS = 3
MEASURED = "measured"
"""Every figure of this study is measured in the run: accuracy by running the model, size by stat-ing its file,
time by the clock."""

PTQ_DROP = {8: Target("8-bit PTQ drop (points)", "<=", 0.3), 4: Target("4-bit PTQ drop (points)", "<=", 1.5)}
ADAROUND_DROP = Target("AdaRound 4-bit PTQ drop (points)", "<=", 0.3)
QAT4_DROP = Target("4-bit QAT drop (points)", "<=", 0.5)
QAT2_DROP = Target("2-bit QAT drop (points)", "<=", 2.0)
TERNARY_DROP = Target("ternary drop (points)", "<=", 2.0)
FILE4 = Target("4-bit packed file, times smaller than fp32", ">=", 7.0)
FILE2 = Target("2-bit packed file, times smaller than fp32", ">=", 12.0)
PTQ_SECONDS = Target("slowest single-point PTQ (s)", "<", 5.0)


def _label(step: str) -> str:
    return step.replace("quantize.", "")


def _accuracy(module, data, split: str) -> float:
    X, y = data.split(split)
    return evaluate(deployable_module(module), X, y, "classification")["accuracy"]


def run(out_dir: Path, fp32_path: Path) -> dict[str, Any]:
    data = wattless.load_dataset("fashion-mnist")
    model = wattless.load(fp32_path)
    fp32 = {split: _accuracy(model.module, data, split) for split in ("val", "test")}
    fp32_bytes = fp32_state_dict_bytes(model)
    rows = []

    def variant(step: str, key: str) -> dict[str, Any]:
        started = time.perf_counter()
        result = apply_steps(model, data, [step])
        seconds = time.perf_counter() - started
        val, accuracy = _accuracy(result.module, data, "val"), _accuracy(result.module, data, "test")
        size = wattless.save(result, out_dir / f"lenet300.{key}.wlz")
        row = {"step": step, "key": key, "val_accuracy": val, "val_drop": (fp32["val"] - val) * 100,
               "accuracy": accuracy, "drop": (fp32["test"] - accuracy) * 100, "size": size,
               "ratio": fp32_bytes / size, "seconds": seconds, "weight_bits": layer_weight_bits(result.module)}
        rows.append(row)
        return row

    adaround = ADAROUND in wattless.list_techniques()
    candidates: dict[int, list[dict[str, Any]]] = {bits: [] for bits in PTQ_BITS}
    uniform: dict[int, dict[str, Any]] = {}
    for bits in PTQ_BITS:
        for method in PTQ_METHODS:
            fields = ",".join(f"{k}={v}" for k, v in {**method, "bits": bits}.items())
            row = variant(f"quantize.ptq:{fields}", f"ptq{bits}-{len(rows)}")
            candidates[bits].append(row)
            if method == NEAREST_UNIFORM:
                uniform[bits] = row
        if adaround and bits in ADAROUND_BITS:
            candidates[bits].append(variant(f"{ADAROUND}:bits={bits}", f"adaround{bits}"))
    best = {bits: choose_on_validation(rows_, lambda r: r["val_accuracy"]) for bits, rows_ in candidates.items()}
    for bits, row in best.items():
        row["chosen"] = f"best {bits}-bit (val)"
    qat4 = variant(f"quantize.qat:bits=4,method=lsq,epochs={TRAIN_EPOCHS}", "qat4")
    qat2 = variant(f"quantize.qat:bits=2,method=lsq,epochs={TRAIN_EPOCHS}", "qat2")
    ternary = variant(f"quantize.ternary:epochs={TRAIN_EPOCHS}", "ternary")
    variant(f"quantize.binary:epochs={TRAIN_EPOCHS}", "binary")
    mixed_layer = variant(f"quantize.mixed:budget_bits={MIXED_BITS}", f"mixed{MIXED_BITS}-layer")
    mixed3 = variant(f"quantize.mixed:budget_bits={MIXED_BITS},unit=channel", f"mixed{MIXED_BITS}-channel")
    variant("quantize.multipoint:points=2,epsilon=0.25", "multipoint2")
    layers = dict(model.module.named_modules())
    weights = {name: layers[name].weight.numel() for name in mixed_layer["weight_bits"]}
    targets = {"uniform": uniform, "fp32": fp32, "fp32_bytes": fp32_bytes, "best": best, "qat4": qat4,
               "qat2": qat2, "ternary": ternary, "mixed3": mixed3, "mixed_layer": mixed_layer,
               "weight_share": {name: n / sum(weights.values()) for name, n in weights.items()},
               "adaround": {bits: next(r for r in candidates[bits] if r["step"].startswith(ADAROUND))
                            for bits in ADAROUND_BITS} if adaround else {},
               "sizes": data.describe()["sizes"]}
    return {"rows": rows, "markdown": _markdown(rows, targets)}


def _mixed_layer_sentence(t: dict[str, Any]) -> str:
    """What the per-layer solver returned, from its result's bit widths."""
    widths, share = t["mixed_layer"]["weight_bits"], t["weight_share"]
    largest = max(share, key=share.get)
    allocation = "/".join(f"{bits:g}" for bits in widths.values())
    text = (f"Per layer (`{_label(t['mixed_layer']['step'])}`), the solver returned {allocation} bits for layers "
            f"{'/'.join(widths)}")
    if len(set(widths.values())) == 1:
        text += " (no mixing at this budget)"
    return text + f"; the largest layer ({largest}) holds {share[largest]:.0%} of the weights."


def _chosen(row: dict[str, Any]) -> str:
    return f"`{_label(row['step'])}`, chosen on validation ({row['val_accuracy'] * 100:.2f}% val)"


def _markdown(rows: list[dict[str, Any]], t: dict[str, Any]) -> str:
    sizes = t["sizes"]
    lines = ["## Quantization: LeNet-300-100 on Fashion-MNIST", "",
             f"The foundation study's fp32 model (test accuracy {t['fp32']['test'] * 100:.2f}%, validation "
             f"{t['fp32']['val'] * 100:.2f}%, fp32 state_dict file {format_bytes(t['fp32_bytes'])}). Accuracy of "
             f"each quantized model on the {sizes['test']:,} test images, and on the {sizes['val']:,} validation "
             "images (*val acc*), where the best PTQ method per bit width is chosen (*choice*); the targets judge "
             "the chosen method's test figures. Size is its packed .wlz file (codes bit-packed at their width, "
             "zstd where smaller); time is the technique alone (QAT, ternary and binary include their "
             f"{TRAIN_EPOCHS} fine-tuning epochs).", "",
             "| technique | val acc | accuracy | drop (pts) | file | smaller | seconds | choice |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{_label(r['step'])}` | {r['val_accuracy'] * 100:.2f}% | {r['accuracy'] * 100:.2f}% | "
                     f"{r['drop']:.2f} | {format_bytes(r['size'])} | {r['ratio']:.1f}x | {r['seconds']:.2f} | "
                     f"{r.get('chosen', '')} |")
    best, uniform = t["best"], t["uniform"]
    ptq_times = [r["seconds"] for r in rows if r["step"].startswith("quantize.ptq")]
    mixed3, qat4, qat2, ternary = t["mixed3"], t["qat4"], t["qat2"], t["ternary"]
    beats_uniform = Target(f"mixed {MIXED_BITS}-bit test accuracy vs uniform", ">", uniform[MIXED_BITS]["accuracy"])
    beats_best = Target(f"mixed {MIXED_BITS}-bit test accuracy vs best", ">", best[MIXED_BITS]["accuracy"])
    codebook = any(f"landmarks={kind}" in best[4]["step"] for kind in ("histogram", "normal"))
    lines += ["", "Targets (issue 4):", ""]
    for bits, target in PTQ_DROP.items():
        lines.append(f"- {bits}-bit PTQ drop {target.op} {target.threshold:g} points, best method "
                     f"{_chosen(best[bits])}: test drop {best[bits]['drop']:.2f} "
                     f"({verdict(target, best[bits]['drop'], MEASURED)})")
    if t["adaround"]:
        ada = t["adaround"][4]
        lines.append(f"- AdaRound 4-bit PTQ drop {ADAROUND_DROP.op} {ADAROUND_DROP.threshold:g} points: "
                     f"{ada['drop']:.2f} ({verdict(ADAROUND_DROP, ada['drop'], MEASURED)}) (nearest uniform: "
                     f"{uniform[4]['drop']:.2f}; at 3 and 2 bits: AdaRound "
                     + ", ".join(f"{t['adaround'][b]['drop']:.2f}" for b in ADAROUND_BITS[1:]) + " vs nearest "
                     + ", ".join(f"{uniform[b]['drop']:.2f}" for b in ADAROUND_BITS[1:]) + ")")
    lines += [
        f"- 4-bit QAT drop {QAT4_DROP.op} {QAT4_DROP.threshold:g} points: {qat4['drop']:.2f} "
        f"({verdict(QAT4_DROP, qat4['drop'], MEASURED)})",
        f"- 2-bit QAT drop {QAT2_DROP.op} {QAT2_DROP.threshold:g} points: {qat2['drop']:.2f} "
        f"({verdict(QAT2_DROP, qat2['drop'], MEASURED)})",
        f"- ternary drop {TERNARY_DROP.op} {TERNARY_DROP.threshold:g} points: {ternary['drop']:.2f} "
        f"({verdict(TERNARY_DROP, ternary['drop'], MEASURED)})",
        f"- mixed precision at {MIXED_BITS} bits on average (per output channel) beats uniform {MIXED_BITS}-bit PTQ "
        f"on the same grid: {mixed3['accuracy'] * 100:.2f}% vs {uniform[MIXED_BITS]['accuracy'] * 100:.2f}% "
        f"({verdict(beats_uniform, mixed3['accuracy'], MEASURED)}); vs the {MIXED_BITS}-bit method "
        f"{_chosen(best[MIXED_BITS])}: {best[MIXED_BITS]['accuracy'] * 100:.2f}% test "
        f"({verdict(beats_best, mixed3['accuracy'], MEASURED)}). {_mixed_layer_sentence(t)}",
        f"- 4-bit packed file <= 1/{FILE4.threshold:g} of fp32: QAT 1/{qat4['ratio']:.1f} "
        f"({verdict(FILE4, qat4['ratio'], MEASURED)}), uniform PTQ 1/{uniform[4]['ratio']:.1f} "
        f"({verdict(FILE4, uniform[4]['ratio'], MEASURED)}); the 4-bit PTQ method chosen on validation "
        f"(`{_label(best[4]['step'])}`) 1/{best[4]['ratio']:.1f} ({verdict(FILE4, best[4]['ratio'], MEASURED)}"
        + (": non-uniform landmarks store a codebook of 2^bits fp32 values per output channel)" if codebook else ")"),
        f"- 2-bit packed file <= 1/{FILE2.threshold:g} of fp32: QAT 1/{qat2['ratio']:.1f} "
        f"({verdict(FILE2, qat2['ratio'], MEASURED)})",
        f"- PTQ of LeNet-300-100 under {PTQ_SECONDS.threshold:g} s: slowest single-point `quantize.ptq` "
        f"{max(ptq_times):.2f} s ({verdict(PTQ_SECONDS, max(ptq_times), MEASURED)})", ""]
    return "\n".join(lines) + "\n"
