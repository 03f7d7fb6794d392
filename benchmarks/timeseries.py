"""Time-series study (issue 9): a patch transformer on BasicMotions (UEA; 6 channels x 100 steps, 4 classes).

Trains `ts_transformer` (30 epochs, seed 0), then compares, as in the green-computing course's time-series
work: ONNX Runtime fp32, dynamic int8 (MatMul/Gemm weights int8, activations quantized on the fly) and static
int8 (QDQ), magnitude pruning with fine-tuning, distillation into a smaller transformer, and pruning +
distillation. Accuracy on the 40 test series (one series = 2.5 points), file size (vs the teacher's fp32
file), latency per sample at batch 1 and 40 (1 thread, all variants timed in the same alternating rounds),
estimated energy per sample. The int8 variant judged against the target (dynamic or static) is the one closer
to fp32 on the validation series; its test figures are then reported.
"""

from __future__ import annotations

import functools
import inspect
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets import Target, choose_on_validation, derived, energy_entry, energy_note, provenance_of, verdict

import wattless
from wattless.api import apply_steps
from wattless.deploy import export_onnx
from wattless.deploy.dynamic import quantize_dynamic_int8
from wattless.io import deployable_module
from wattless.measurement import time_interleaved, time_onnx, time_torch
from wattless.models.transformer import ts_transformer
from wattless.pipeline import file_quality
from wattless.report.format import format_bytes, format_energy
from wattless.techniques import parse_step

EPOCHS = 30
STUDENT = {"student": "ts_transformer", "student_kwargs": {"d_model": 48, "depth": 1, "heads": 4},
           "temperature": 2.0, "alpha": 0.5, "epochs": 100, "lr": 0.003}
PRUNE = "prune.magnitude:sparsity=0.5,scope=global,schedule=gradual,finetune_epochs=30,lr=0.001"


@dataclass(frozen=True)
class Subject:
    """The model a run of the study trains and compresses: a zoo or ``hf:`` name, its training, its student."""

    model: str = "ts_transformer"
    train: dict[str, Any] = field(default_factory=lambda: {"epochs": EPOCHS})
    student: dict[str, Any] = field(default_factory=lambda: STUDENT)
    folder: str = "timeseries"
    title: str = "## Time series: a patch transformer on BasicMotions (issue 9)"
    issue: str = "issue 9"
    chosen: str = ""
    """How the training settings were chosen (a sentence for the report), if they were."""
    described: str = ""
    """The architecture's settings, where the spec does not hold them (a Hugging Face config's defaults)."""


def variants(subject: Subject) -> dict[str, list]:
    student = subject.student
    return {"pruned 50%": [PRUNE], f"distilled ({_kwargs(student['student_kwargs'])})": [("distill.hinton", student)],
            "distilled + pruned 50%": [("distill.hinton", student), PRUNE]}


def _kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in kwargs.items())
BATCHES = ((1, 200), (40, 50))
THREADS = 1
FP32_ACCURACY = Target("fp32 test accuracy", ">=", 0.9)
INT8_WITHIN = Target("int8 |test Δ| vs fp32 (points)", "<=", 1.0)


def _steps(steps: list) -> list:
    from wattless.techniques import make_config

    return [step if isinstance(step, str) else (step[0], make_config(step[0], step[1])) for step in steps]


def run(out_dir: Path, *, rounds: int = 7, subject: Subject = Subject()) -> dict[str, Any]:
    data = wattless.load_dataset("basic-motions")
    folder = out_dir / subject.folder
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    model = wattless.train(subject.model, data, seed=0, **subject.train)
    train_s = time.perf_counter() - started
    base_path = folder / f"{subject.model.replace(':', '-')}.wlz"
    wattless.save(model, base_path)
    files: dict[str, Path] = {"fp32 (PyTorch / ORT)": base_path}
    fp32_onnx = wattless.export(model, folder / "fp32.onnx", force=True)  # carries the record metadata (fp32 size, ...)
    files["int8 dynamic (ORT)"] = quantize_dynamic_int8(fp32_onnx, folder / "int8-dynamic.onnx")
    files["int8 static QDQ (ORT)"] = wattless.compress(model, data, folder / "int8-static.onnx", int8=True,
                                                       force=True, measure_result=False).path
    seconds = {"fp32 (PyTorch / ORT)": train_s}
    for name, steps in variants(subject).items():
        began = time.perf_counter()
        variant = apply_steps(model, data, _steps(steps))
        seconds[name] = time.perf_counter() - began
        path = folder / f"{name.split()[0]}-{len(files)}.wlz"
        wattless.save(variant, path)
        files[name] = path
    rows = [_measure(name, path, data) | {"seconds": seconds.get(name)} for name, path in files.items()]
    _time_all(rows, data.input_shape, rounds)
    setup = {"model": model.meta["model"], "train": model.meta["train"]["config"], "rounds": rounds,
             "sizes": data.describe()["sizes"], "subject": subject}
    return {"rows": rows, "markdown": _markdown(rows, setup)}


def _measure(name: str, path: Path, data) -> dict[str, Any]:
    engines = ("int8",) if path.suffix == ".onnx" else ("torch",)
    record = wattless.measure(path, data, batches=(), engines=engines)
    estimate, energy_kind = energy_entry(record)  # the analytical estimate, for every row alike
    row = {"name": name, "path": path, "record": record, "accuracy": record["accuracy"],
           "accuracy_kind": provenance_of(record, "accuracy"),
           "val_accuracy": file_quality(path, data, "val")["accuracy"], "size": record["size_bytes"],
           "fp32_size": record["size_bytes_fp32"], "energy": estimate["value"], "energy_kind": energy_kind,
           "macs": record["macs"]}
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
                timing = {"batch": batch, "repeats": repeats, "threads": THREADS}
                timers[f"{i}/ort"] = functools.partial(time_onnx, onnx_path, input_shape, **timing)
                if "module" in row:
                    timers[f"{i}/torch"] = functools.partial(time_torch, row["module"], input_shape, **timing)
            timed = time_interleaved(timers, rounds=rounds)
            for i, row in enumerate(rows):
                row[f"ort_b{batch}"] = timed[f"{i}/ort"]["median"] / batch
                row[f"torch_b{batch}"] = timed[f"{i}/torch"]["median"] / batch if f"{i}/torch" in timed else None


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _model_phrase(spec: dict[str, Any], train: dict[str, Any], described: str = "") -> str:
    """The trained transformer's shape and training, from its spec (factory defaults where not given)."""
    if spec["name"] != "ts_transformer":  # a Hugging Face model: its config as the subject describes it
        given = ", ".join(filter(None, [described, _kwargs(spec.get("kwargs") or {})]))
        return f"{given}; {train['epochs']} epochs, batch {train['batch_size']}, seed {train['seed']}"
    defaults = {name: p.default for name, p in inspect.signature(ts_transformer).parameters.items()
                if p.default is not inspect.Parameter.empty}
    k = {**defaults, **(spec.get("kwargs") or {})}
    return (f"patches of {k['patch_size']} steps, d_model {k['d_model']}, {k['depth']} layer"
            f"{'s' if k['depth'] != 1 else ''}, {k['heads']} heads; {train['epochs']} epochs, seed {train['seed']}")


def _variants_phrase(subject: Subject) -> str:
    """Distillation and pruning settings, read from the steps the study runs."""
    student = subject.student
    _, prune = parse_step(PRUNE)
    return (f"Distillation: Hinton soft targets (T={student['temperature']:g}, alpha={student['alpha']:g}) into a "
            f"`{student['student']}` with {_kwargs(student['student_kwargs'])} ({student['epochs']} epochs); pruning: "
            f"{prune.schedule} magnitude pruning to {prune.sparsity:.0%} ({prune.scope}) with "
            f"{prune.finetune_epochs} epochs of fine-tuning.")


def _markdown(rows: list[dict[str, Any]], setup: dict[str, Any]) -> str:
    base = rows[0]
    big = BATCHES[-1][0]
    sizes = setup["sizes"]
    point = 100 / sizes["test"]
    val_point = 100 / sizes["val"]
    subject = setup["subject"]
    lines = [subject.title, "",
             f"`{subject.model}` ({_model_phrase(setup['model'], setup['train'], subject.described)}) on BasicMotions "
             f"({sizes['train']} train / {sizes['val']} validation / {sizes['test']} test series; one test series = "
             f"{point:.3g} points, one validation series = {val_point:.3g}). Latency: ms per sample, medians of "
             f"{setup['rounds']} alternating rounds, {THREADS} thread{'s' if THREADS > 1 else ''}; .wlz variants in "
             "PyTorch eager and exported to ONNX Runtime fp32, .onnx variants in ONNX Runtime. Speed-up vs fp32 ONNX "
             f"Runtime at the same batch. {energy_note([r['record'] for r in rows], used='energy_estimate')} "
             f"{_variants_phrase(subject)} *val acc*: accuracy on the validation series, where the int8 variant "
             f"judged below is chosen.{(' ' + subject.chosen) if subject.chosen else ''}", "",
             f"| variant | val acc | accuracy | Δ (pts) | file | smaller | torch b1 | ORT b1 | torch b{big} | "
             f"ORT b{big} | ORT speed-up b1 / b{big} | MACs | energy/sample | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        drop = (r["accuracy"] - base["accuracy"]) * 100
        build = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(
            f"| {r['name']} | {r['val_accuracy'] * 100:.1f}% | {r['accuracy'] * 100:.1f}% | {drop:+.1f} | "
            f"{format_bytes(r['size'])} | "
            f"{base['fp32_size'] / r['size']:.1f}x | {_ms(r['torch_b1'])} | {_ms(r['ort_b1'])} | "
            f"{_ms(r[f'torch_b{big}'])} | {_ms(r[f'ort_b{big}'])} | {base['ort_b1'] / r['ort_b1']:.2f}x / "
            f"{base[f'ort_b{big}'] / r[f'ort_b{big}']:.2f}x | {r['macs']:,} | {format_energy(r['energy'])} | "
            f"{build} |")
    dynamic, static = rows[1], rows[2]
    # the int8 variant closest to fp32 on validation (the first listed on a tie); judged on test
    best = choose_on_validation([dynamic, static], lambda r: -abs(r["val_accuracy"] - base["val_accuracy"]))
    best_delta = (best["accuracy"] - base["accuracy"]) * 100
    best_val_delta = (best["val_accuracy"] - base["val_accuracy"]) * 100
    tie = abs(dynamic["val_accuracy"] - base["val_accuracy"]) == abs(static["val_accuracy"] - base["val_accuracy"])
    fp32_ok = verdict(FP32_ACCURACY, base["accuracy"], base["accuracy_kind"])
    int8_ok = verdict(INT8_WITHIN, abs(best_delta), derived(base["accuracy_kind"], best["accuracy_kind"]))
    lines += ["", f"Targets ({subject.issue}):", "",
              f"- fp32 test accuracy {base['accuracy'] * 100:.1f}% ({FP32_ACCURACY.op} "
              f"{FP32_ACCURACY.threshold * 100:g}%: {fp32_ok}).",
              f"- int8 within {INT8_WITHIN.threshold:g} point on test, variant chosen on validation: {best['name']} "
              f"(val Δ {best_val_delta:+.1f}{', a tie, so the first listed' if tie else ''}), test Δ "
              f"{best_delta:+.1f} points ({int8_ok}; "
              f"test Δ of both: dynamic {(dynamic['accuracy'] - base['accuracy']) * 100:+.1f}, static "
              f"{(static['accuracy'] - base['accuracy']) * 100:+.1f}); {best['name']} runs "
              f"{base['ort_b1'] / best['ort_b1']:.2f}x at batch 1 and {base[f'ort_b{big}'] / best[f'ort_b{big}']:.2f}x "
              f"at batch {big} vs fp32 ONNX Runtime, file {base['fp32_size'] / best['size']:.1f}x smaller.", ""]
    return "\n".join(lines)
