"""Hardware simulation study (issue 15): energy and latency of LeNet-300-100, LeNet-5 and the time-series transformer
on accelerator designs ZigZag ships, at every (weight bits, activation bits) of :data:`WEIGHT_BITS` x
:data:`ACT_BITS`, beside the 45 nm analytical estimate; and the survey's ``.wlz`` pipelines priced on each design.

Variants are the foundation/time-series studies' fp32 models with ``quantize.ptq`` at the weight bits (none at 32)
and ``quantize.activations`` at the activation bits (none at 32): the precisions the simulator sees are read from
the models, as ``wattless measure --simulate`` reads them. A design that cannot hold a precision simulates the
layer narrower and says so (counted in the table). ZigZag does not model sparsity, and prices a MAC at the array's
energy whatever its bits: lower precision pays through the bytes memories move. Run the foundation, survey and
timeseries studies first (they write the models).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import wattless  # noqa: E402
from wattless.io import deployable_module  # noqa: E402
from wattless.measurement.energy import estimate_energy  # noqa: E402
from wattless.measurement.onnx_ops import count_onnx_macs  # noqa: E402
from wattless.measurement.profile import layer_profile  # noqa: E402
from wattless.measurement.simulate import architecture, simulate, zigzag_version  # noqa: E402
from wattless.report.format import format_energy  # noqa: E402

MODELS = {"lenet300": ("lenet300.wlz", "fashion-mnist"), "lenet5": ("lenet5.wlz", "fashion-mnist"),
          "ts_transformer": ("timeseries/ts_transformer.wlz", "basic-motions")}
DESIGNS = ("edge_tpu_like", "tpu_like", "meta_prototype")
WEIGHT_BITS = (32, 16, 8, 6, 4, 3, 2)
ACT_BITS = (8, 16, 32)
SURVEY = {name: ("baseline", "prune", "deep", "kd", "kd-pruned", "int8", "kd-int8", "kd-pruned-int8")
          for name in ("lenet300", "lenet5")}
"""The survey's pipelines: ``.wlz`` files at their packed bits, ``*-int8`` the ONNX files at the 8 bits they store."""
CALIBRATION_ROWS = 256


def variant(model, data, weight_bits: int, act_bits: int):
    steps = []
    if act_bits < 32:
        steps.append(f"quantize.activations:bits={act_bits},samples={CALIBRATION_ROWS}")
    if weight_bits < 32:
        steps.append(f"quantize.ptq:bits={weight_bits}")
    return wattless.apply_steps(model, data, steps) if steps else model


def estimate(model) -> float:
    """The 45 nm analytical estimate (J per sample, batch 1) of the same variant."""
    return layer_profile(model.module, deployable_module(model.module), model.input_shape)["energy"]["value"]


def onnx_estimate(path: Path) -> float:
    """The 45 nm estimate of an ONNX file, from its graph's MACs and stored precisions (batch 1)."""
    layers = count_onnx_macs(path)["layers"]
    bits = {layer["name"]: layer["weight_bits"] or layer["act_bits"] for layer in layers}
    acts = {layer["name"]: layer["act_bits"] for layer in layers}
    return estimate_energy(layers, weight_bits=bits, act_bits=acts, float_ops=True)["value"]


def timed(model, design, cache: Path) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    return simulate(model, design, partial=True, cache_dir=cache), time.perf_counter() - started


def run(out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    designs = [architecture(name) for name in DESIGNS]
    study_cache = out_dir / "hardware-study-cache"  # the study's own, emptied: its time is from a cold start
    shutil.rmtree(study_cache, ignore_errors=True)
    rows, priced, timing = [], [], {}
    for name, (file, dataset) in MODELS.items():
        path = out_dir / file
        if not path.exists():
            raise SystemExit(f"{path} not found: run the foundation and timeseries studies first")
        data = wattless.load_dataset(dataset)
        base = wattless.load(path)
        for weight_bits in WEIGHT_BITS:
            for act_bits in ACT_BITS:
                model = variant(base, data, weight_bits, act_bits)
                estimated = estimate(model)
                for design in designs:
                    found, seconds = timed(model, design, study_cache)
                    rows.append({"model": name, "w": weight_bits, "a": act_bits, "design": design.name,
                                 "energy": found["energy_j_per_sample"], "cycles": found["latency_cycles"],
                                 "warnings": len(found.get("warnings", [])), "left_out": found.get("left_out", []),
                                 "estimate": estimated, "seconds": seconds})
    lenet5 = wattless.load(out_dir / "lenet5.wlz")
    for cold in (True, False):  # LeNet-5 on one design, from an empty cache and then from the filled one
        cache = out_dir / "hardware-cache"
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        began = time.perf_counter()
        simulate(lenet5, designs[0], cache_dir=cache)
        timing["cold" if cold else "cached"] = time.perf_counter() - began
    for name, keys in SURVEY.items():
        for key in keys:
            suffix = ".onnx" if key.endswith("int8") else ".wlz"
            path = out_dir / (f"{name}.wlz" if key == "baseline" else f"survey/{name}.{key}{suffix}")
            model = path if suffix == ".onnx" else wattless.load(path, keep_parametrizations=True)
            estimated = onnx_estimate(path) if suffix == ".onnx" else estimate(model)
            for design in designs:
                found, _ = timed(model, design, study_cache)
                priced.append({"model": name, "key": key, "design": design.name,
                               "energy": found["energy_j_per_sample"], "cycles": found["latency_cycles"],
                               "estimate": estimated, "warnings": len(found.get("warnings", []))})
    plot(rows, out_dir / "hardware.png")
    seconds = time.perf_counter() - started
    return {"rows": rows, "priced": priced, "markdown": markdown(rows, priced, timing, seconds)}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Energy per sample vs weight bits (8-bit activations), one panel per model, a line per design and the
    45 nm estimate dashed."""
    fig, axes = plt.subplots(1, len(MODELS), figsize=(5 * len(MODELS), 4))
    for ax, name in zip(axes, MODELS, strict=True):
        picked = [r for r in rows if r["model"] == name and r["a"] == 8]
        for design in DESIGNS:
            line = sorted((r["w"], r["energy"]) for r in picked if r["design"] == design)
            ax.plot(*zip(*line, strict=True), marker="o", label=f"{design} (simulated)")
        est = sorted({(r["w"], r["estimate"]) for r in picked})
        ax.plot(*zip(*est, strict=True), linestyle="--", color="black", label="45 nm estimate")
        ax.set(title=f"{name}, 8-bit activations", xlabel="weight bits", ylabel="J per sample", yscale="log")
        ax.invert_xaxis()
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _find(rows, **match):
    return next(r for r in rows if all(r[k] == v for k, v in match.items()))


def markdown(rows: list[dict[str, Any]], priced: list[dict[str, Any]], timing: dict[str, float],
             seconds: float) -> str:
    version = zigzag_version()
    lines = ["## Hardware simulation: accelerator designs through ZigZag (issue 15)", "",
             f"Every figure in this section is **simulated** by ZigZag {version} (KU Leuven) on the design named in "
             "its row, layer by layer at batch 1, with the weight and activation bits read from the model "
             "(`quantize.ptq` and `quantize.activations` variants of the fp32 models; 32 means none), beside the "
             "45 nm analytical **estimate** of the same variant. ZigZag does not model sparsity and prices a MAC at "
             "the array's `unit_energy` whatever its bits: lower precision saves energy here only through the "
             "bytes the memories move. *narrowed*: layers the design could not hold at the asked precision, "
             "simulated narrower (its registers are 8 or 16 bits wide).", "",
             "| model | design | act bits | " + " | ".join(f"w{b}" for b in WEIGHT_BITS) + " | narrowed |",
             "|---|---|---|" + "---|" * len(WEIGHT_BITS) + "---|"]
    for name in MODELS:
        for design in DESIGNS:
            for act in ACT_BITS:
                cells = [_find(rows, model=name, design=design, a=act, w=w) for w in WEIGHT_BITS]
                lines.append(f"| {name} | {design} | {act} | " + " | ".join(format_energy(c["energy"]) for c in cells)
                             + f" | {sum(c['warnings'] for c in cells)} |")
        est = [_find(rows, model=name, design=DESIGNS[0], a=8, w=w)["estimate"] for w in WEIGHT_BITS]
        lines.append(f"| {name} | 45 nm estimate | 8 | " + " | ".join(format_energy(e) for e in est) + " | – |")
    lines += ["", "![Energy vs weight bits per design](benchmarks/results/hardware.png)", "",
              "Does 4-bit save energy over 8-bit weights (8-bit activations), by the simulator? "]
    for name in MODELS:
        answers = []
        for design in DESIGNS:
            four, eight = (_find(rows, model=name, design=design, a=8, w=w) for w in (4, 8))
            ratio = eight["energy"] / four["energy"]
            verdict = "yes" if ratio > 1.005 else ("no" if ratio < 0.995 else "no difference")
            answers.append(f"{design}: {verdict} ({ratio:.2f}x less with 4-bit)")
        lines.append(f"- {name}: " + "; ".join(answers) + ".")
    lines += ["", "Latency (cycles, simulated, 8-bit activations):", "",
              "| model | design | " + " | ".join(f"w{b}" for b in WEIGHT_BITS) + " |",
              "|---|---|" + "---|" * len(WEIGHT_BITS)]
    for name in MODELS:
        for design in DESIGNS:
            cells = [_find(rows, model=name, design=design, a=8, w=w)["cycles"] for w in WEIGHT_BITS]
            lines.append(f"| {name} | {design} | " + " | ".join(f"{c:,.0f}" for c in cells) + " |")
    left = sorted({(r["model"], item["name"], item["op"]) for r in rows for item in r["left_out"]})
    if left:
        lines += ["", "Layers ZigZag could not simulate (left out of the figures above): " + ", ".join(
            f"{model} {layer} ({op})" for model, layer, op in left) + "."]
    lines += ["", "The survey's pipelines priced on each design (energy per sample, simulated; estimate: 45 nm; "
              "`.wlz` files at their packed bits, `*-int8` the int8 ONNX files at the 8 bits their graph stores; "
              "pruned weights still cost: sparsity is not modelled):", "",
              "| model | pipeline | " + " | ".join(DESIGNS) + " | 45 nm estimate |",
              "|---|---|" + "---|" * len(DESIGNS) + "---|"]
    for name, keys in SURVEY.items():
        for key in keys:
            cells = [_find(priced, model=name, key=key, design=d) for d in DESIGNS]
            lines.append(f"| {name} | {key} | " + " | ".join(format_energy(c["energy"]) for c in cells)
                         + f" | {format_energy(cells[0]['estimate'])} |")
    lines += ["", "Targets (issue 15):", "",
              f"- LeNet-5 on {DESIGNS[0]}: {timing['cold']:.1f} s from an empty cache (<= 10 s: "
              f"{'met' if timing['cold'] <= 10 else '**missed**'}), {timing['cached']:.2f} s from the cache (<= 1 s: "
              f"{'met' if timing['cached'] <= 1 else '**missed**'}).",
              f"- The whole study, from an empty cache: {seconds / 60:.1f} min (<= 15 min: "
              f"{'met' if seconds <= 900 else '**missed**'}).",
              f"- Every simulated figure names its tool (ZigZag {version}) and design (the rows above).", ""]
    return "\n".join(lines)
