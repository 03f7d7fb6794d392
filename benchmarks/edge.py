"""The batch-1 "edge" table (issue 14): the survey's ``.wlz`` models exported to C and run by the native runtime,
against the fp32 teacher in PyTorch eager and in ONNX Runtime, on Fashion-MNIST.

Every row of a model is timed in the same alternating rounds (1 thread, medians of round medians): the teacher in
PyTorch eager and as fp32 ONNX in ONNX Runtime, each row's native library (built with ``-O3 -march=native``, timed by
its own C loop on a monotonic clock; the extra cost of a call from Python is reported beside it). Weights in memory
and the arena are read from the built library's ELF sections and its header; the microcontroller figures from the
same C compiled for a Cortex-M4F (``arm-none-eabi-gcc``), and its predictions from QEMU's mps2-an386 board. The
best pipeline is chosen among the rows within one point on the validation split; the agreement with the ``.wlz``
is on the whole test split. Run the survey study first (it writes the models).
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from targets import Target, all_met, verdict

import wattless
from wattless.deploy import OnnxModel, export_onnx
from wattless.io import deployable_module
from wattless.measurement import time_interleaved, time_onnx, time_torch
from wattless.measurement.engines import get_engine
from wattless.measurement.latency import time_runner
from wattless.pipeline import file_quality, predict
from wattless.report.format import format_bytes
from wattless.runtime import mcu
from wattless.runtime.export import export_c

ROWS = {"lenet300": ("baseline", "prune", "deep", "kd", "kd-pruned", "int8"),
        "lenet5": ("baseline", "prune", "deep", "kd", "kd-pruned")}
"""The survey's rows stored as ``.wlz`` (the native runtime builds from packed weights, not from ONNX files), and
``int8``: the teacher with 8-bit activation quantizers and 8-bit weight codes (:data:`INT8_STEPS`), which the
native runtime runs in integers, compared with the survey's int8 model in ONNX Runtime."""
INT8_STEPS = ["quantize.activations:bits=8,samples=1024", "quantize.ptq:bits=8,granularity=channel"]
"""Calibrated as the survey's ONNX Runtime int8 model is: min-max ranges on the first 1,024 training rows, one weight
scale per output channel."""
BATCHES = ((1, 100), (256, 4))
"""(batch size, timed runs per round): short rounds, many of them, so that the slow and fast spells of a shared
machine fall on every variant of a round alike."""
ROUNDS = 21
THREADS = 1
MAX_DROP = 1.0
QEMU_SAMPLES = 300

DEEP300 = {"agree": Target("LeNet-300-100 deep compression, native predictions equal to the .wlz's (share)", ">=",
                           0.999),
           "rodata": Target("LeNet-300-100 deep compression, .rodata over .wlz bytes", "<=", 2.0),
           "b1_torch": Target("LeNet-300-100 deep compression, batch-1 speed-up vs the teacher in PyTorch eager", ">=",
                              8.0),
           "b1_ort": Target("LeNet-300-100 deep compression, batch-1 speed-up vs the teacher in ONNX Runtime", ">=",
                            3.0),
           "b256_torch": Target("LeNet-300-100 deep compression, batch-256 speed-up vs PyTorch eager", ">=", 1.0),
           "build": Target("LeNet-300-100 deep compression, export + build seconds", "<", 10.0),
           "flash": Target("LeNet-300-100 deep compression, Cortex-M4F flash bytes", "<=", 48 * 1024),
           "ram": Target("LeNet-300-100 deep compression, Cortex-M4F RAM bytes", "<=", 8 * 1024),
           "qemu": Target("LeNet-300-100 deep compression, QEMU predictions equal to the PC build's (share)", ">=",
                          1.0)}
INT8 = Target("LeNet-300-100 int8 in integers, native argmax equal to ONNX Runtime int8's (share)", ">=", 0.999)
BEST300 = Target("best LeNet-300-100 pipeline within 1 point, native batch-1 speed-up vs PyTorch eager", ">=", 10.0)
DEEP5 = Target("LeNet-5 deep compression, native batch 1 vs the dense teacher in ONNX Runtime (times faster)", ">",
               1.0)


def build_rows(name: str, data, survey_dir: Path, tmp: Path) -> list[dict[str, Any]]:
    """Export and build every row's native library; its accuracy, agreement with the .wlz and footprint."""
    rows = []
    for key in ROWS[name]:
        path = survey_dir.parent / f"{name}.wlz" if key == "baseline" else survey_dir / f"{name}.{key}.wlz"
        if key == "int8":
            path = survey_dir.parent / "edge" / f"{name}.int8.wlz"
            path.parent.mkdir(exist_ok=True)
            wattless.save(wattless.apply_steps(wattless.load(survey_dir.parent / f"{name}.wlz"), data, INT8_STEPS),
                          path)
        model = wattless.load(path, keep_parametrizations=True)
        started = time.perf_counter()
        runner = get_engine("native").load(model, workdir=tmp / f"{name}-{key}")
        build_s = time.perf_counter() - started
        X_test, y_test = data.split("test")
        native = runner.predict(X_test)
        reference = predict(wattless.load(path).module, X_test)
        rows.append({"model": name, "key": key, "path": path, "runner": runner, "build_s": build_s,
                     "wlz_bytes": path.stat().st_size, "footprint": runner.footprint,
                     "agree": float((native.argmax(1) == reference.argmax(1)).mean()),
                     "agree_ort_int8": (float((native.argmax(1) == OnnxModel(survey_dir / f"{name}.int8.onnx")
                                               .predict(X_test).argmax(1)).mean()) if key == "int8" else None),
                     "accuracy": float((native.argmax(1) == y_test).mean()),
                     "val_accuracy": file_quality(path, data, "val")["accuracy"]})
    base = rows[0]
    for row in rows:
        row["val_drop"] = (base["val_accuracy"] - row["val_accuracy"]) * 100
        row["drop"] = (base["accuracy"] - row["accuracy"]) * 100
    return rows


def time_rows(rows: list[dict[str, Any]], teacher: Path, input_shape, rounds: int, tmp: Path) -> dict[str, float]:
    """Medians (ms per batch) of the teacher in torch and ORT and of every native row, in the same rounds."""
    module = deployable_module(wattless.load(teacher).module).eval()
    onnx_path = tmp / f"{teacher.stem}.onnx"
    export_onnx(module, input_shape, onnx_path)
    timers = {}
    for batch, repeats in BATCHES:
        timers[f"torch/b{batch}"] = functools.partial(time_torch, module, input_shape, batch=batch, repeats=repeats,
                                                      threads=THREADS)
        timers[f"ort/b{batch}"] = functools.partial(time_onnx, onnx_path, input_shape, batch=batch, repeats=repeats,
                                                    threads=THREADS)
        for row in rows:
            timers[f"{row['key']}/b{batch}"] = functools.partial(time_runner, row["runner"], batch=batch,
                                                                 repeats=repeats)
    timed = time_interleaved(timers, rounds=rounds)
    for row in rows:
        for batch, _ in BATCHES:
            native = timed[f"{row['key']}/b{batch}"]
            row[f"native_b{batch}"] = native["median"]
            for engine in ("torch", "ort"):
                row[f"speedup_{engine}_b{batch}"] = _round_ratio(timed[f"{engine}/b{batch}"], native)
        row["python_call_ms"] = timed[f"{row['key']}/b1"].get("python_call_ms")
    return {key: value["median"] for key, value in timed.items()}


def _round_ratio(reference: dict[str, Any], timed: dict[str, Any]) -> float:
    """How many times faster ``timed`` ran than ``reference``: the median over rounds of the ratio of their round
    medians (two timings of one round share the machine's state)."""
    return float(np.median(np.divide(reference["round_medians"], timed["round_medians"])))


def qemu_agreement(row: dict[str, Any], data, tmp: Path) -> float | None:
    """Share of :data:`QEMU_SAMPLES` test samples on which the emulated Cortex-M4F predicts what the PC build does."""
    if mcu.mcu_compiler() is None or mcu.qemu() is None:
        return None
    X = data.split("test")[0][:QEMU_SAMPLES]
    folder = tmp / f"qemu-{row['model']}-{row['key']}"
    folder.mkdir()
    exported = export_c(wattless.load(row["path"], keep_parametrizations=True), folder / "c", check=False)
    emulated = mcu.run_in_qemu(exported.path, X, folder)
    return float((emulated == row["runner"].predict(X).argmax(1)).mean())


def run(out_dir: Path, *, rounds: int = ROUNDS) -> dict[str, Any]:
    survey_dir = out_dir / "survey"
    if not (survey_dir / "lenet300.deep.wlz").exists():
        raise SystemExit("run the survey study first: it writes the models this study exports")
    data = wattless.load_dataset("fashion-mnist")
    rows, teachers = [], {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for model in ROWS:
            model_rows = build_rows(model, data, survey_dir, tmp)
            teachers[model] = time_rows(model_rows, out_dir / f"{model}.wlz", data.input_shape, rounds, tmp)
            rows += model_rows
        deep300 = next(r for r in rows if r["model"] == "lenet300" and r["key"] == "deep")
        deep300["qemu_agree"] = qemu_agreement(deep300, data, tmp)
    return {"rows": rows, "markdown": _markdown(rows, teachers, rounds)}


def _us(ms: float | None) -> str:
    return "–" if ms is None else f"{ms * 1000:.1f}"


def _bytes(value: int | None) -> str:
    return "–" if value is None else format_bytes(value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| model | variant | val Δ (pts) | accuracy | agrees with .wlz | native b1 µs | call from Python µs | "
             "vs torch b1 | vs ORT b1 | native b256 ms | vs torch b256 | .wlz | weights in memory | arena | "
             "M4F flash | M4F RAM | export + build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["footprint"]
        lines.append(
            f"| {r['model']} | {r['key']} | {-r['val_drop']:+.2f} | {r['accuracy'] * 100:.2f}% | "
            f"{r['agree'] * 100:.2f}% | {_us(r['native_b1'])} | {_us(r['python_call_ms'])} | "
            f"{r['speedup_torch_b1']:.1f}x | {r['speedup_ort_b1']:.1f}x | {r['native_b256']:.3f} | "
            f"{r['speedup_torch_b256']:.2f}x | {format_bytes(r['wlz_bytes'])} | {format_bytes(f['rodata_bytes'])} | "
            f"{format_bytes(f['arena_bytes'])} | {_bytes(f.get('mcu_flash_bytes'))} | {_bytes(f.get('mcu_ram_bytes'))} "
            f"| {r['build_s']:.1f} |")
    return lines


def _markdown(rows: list[dict[str, Any]], teachers: dict[str, dict[str, float]], rounds: int) -> str:
    f = rows[0]["footprint"]
    lines = ["## Compressed models run compressed: the native C runtime at batch 1 (issue 14)", "",
             "The survey's `.wlz` models exported with `wattless export --format c` and run by the `native` engine "
             f"(compiled with `{f['flags']}` by `{f['compiler']}`; timed inside the library). All rows of a model and "
             f"its fp32 teacher in PyTorch eager and ONNX Runtime timed in the same {rounds} alternating rounds "
             f"({' and '.join(f'{n} runs at batch {b}' for b, n in BATCHES)} per round), {THREADS} thread; latency: "
             "the median of the round medians; speed-ups against the teacher at the same batch: the median over "
             "rounds of the per-round ratio (this machine has spells at half speed that a round shares). *weights in "
             "memory*: the library's `.rodata` (the packed weights as const data); *arena*: the activations' memory "
             "(`WL_ARENA_BYTES`); *M4F*: the same C compiled for a Cortex-M4F "
             f"(`{f.get('mcu_flags', 'arm-none-eabi-gcc not installed')}`), flash = code + constants + data, RAM = "
             "data + zeroed data + arena + a stack bound. *val Δ*: vs the teacher on the validation split, where the "
             "best pipeline is chosen; *accuracy*: the native library's on the test split.", ""]
    for model, medians in teachers.items():
        lines.append(f"- Teacher `{model}`: PyTorch eager {_us(medians['torch/b1'])} µs at batch 1, "
                     f"{medians['torch/b256']:.3f} ms at batch 256; ONNX Runtime fp32 {_us(medians['ort/b1'])} µs and "
                     f"{medians['ort/b256']:.3f} ms.")
    lines += ["", *_table(rows), "", "Targets (issue 14):", ""]
    deep = next(r for r in rows if r["model"] == "lenet300" and r["key"] == "deep")
    f = deep["footprint"]
    rodata_ratio = f["rodata_bytes"] / deep["wlz_bytes"]
    checks = [("agree", deep["agree"], f"{deep['agree'] * 100:.2f}% of the test set"),
              ("rodata", rodata_ratio, f"{format_bytes(f['rodata_bytes'])} = {rodata_ratio:.2f}x the "
                                       f"{format_bytes(deep['wlz_bytes'])} file"),
              ("b1_torch", deep["speedup_torch_b1"], f"{deep['speedup_torch_b1']:.2f}x"),
              ("b1_ort", deep["speedup_ort_b1"], f"{deep['speedup_ort_b1']:.2f}x"),
              ("b256_torch", deep["speedup_torch_b256"], f"{deep['speedup_torch_b256']:.2f}x"),
              ("build", deep["build_s"], f"{deep['build_s']:.1f} s")]
    if "mcu_flash_bytes" in f:
        checks += [("flash", f["mcu_flash_bytes"], format_bytes(f["mcu_flash_bytes"])),
                   ("ram", f["mcu_ram_bytes"], format_bytes(f["mcu_ram_bytes"]))]
    for key, value, shown in checks:
        target = DEEP300[key]
        lines.append(f"- {target.label}: {shown} ({target.op} {target.threshold:g}: "
                     f"{verdict(target, value, 'measured')}).")
    if "mcu_flash_bytes" not in f:
        lines.append("- Cortex-M4F flash and RAM: not measured (`arm-none-eabi-gcc` is not installed here).")
    if deep.get("qemu_agree") is None:
        lines.append("- QEMU: not run (`qemu-system-arm` or the Arm toolchain is not installed here).")
    else:
        target = DEEP300["qemu"]
        lines.append(f"- {target.label}: {deep['qemu_agree'] * 100:.2f}% of {QEMU_SAMPLES} test samples "
                     f"({verdict(target, deep['qemu_agree'], 'measured')}).")
    eligible = [r for r in rows if r["model"] == "lenet300" and r["key"] != "baseline" and r["val_drop"] <= MAX_DROP]
    best = max(eligible, key=lambda r: r["speedup_torch_b1"], default=None)
    if best is None:
        lines.append(f"- {BEST300.label}: no row is within {MAX_DROP:g} point on validation (**missed**).")
    else:
        lines.append(f"- {BEST300.label}: `{best['key']}` (val drop {best['val_drop']:.2f}, test drop "
                     f"{best['drop']:.2f}), {best['speedup_torch_b1']:.2f}x ({BEST300.op} {BEST300.threshold:g}x: "
                     f"{all_met((BEST300, best['speedup_torch_b1'], 'measured'))}).")
    int8 = next(r for r in rows if r["model"] == "lenet300" and r["key"] == "int8")
    lines.append(f"- {INT8.label}: {int8['agree_ort_int8'] * 100:.2f}% of the test set ({INT8.op} {INT8.threshold:g}: "
                 f"{verdict(INT8, int8['agree_ort_int8'], 'measured')}; two int8 quantizations of the same teacher, "
                 f"wattless's `{' -> '.join(INT8_STEPS)}` and the survey's ONNX Runtime static int8, calibrated "
                 "apart; the native run matches its own `.wlz` on "
                 f"{int8['agree'] * 100:.2f}%).")
    deep5 = next(r for r in rows if r["model"] == "lenet5" and r["key"] == "deep")
    lines.append(f"- {DEEP5.label}: {deep5['speedup_ort_b1']:.2f}x ({DEEP5.op} {DEEP5.threshold:g}: "
                 f"{verdict(DEEP5, deep5['speedup_ort_b1'], 'measured')}).")
    return "\n".join(lines) + "\n"
