"""The compression-survey table (issue 6): baseline, int8, distillation, pruning + retraining, prune -> quantize,
distill -> quantize, distill into a pruned student -> quantize, and the pipeline a user can build by hand from
existing tools (Torch-Pruning 50% structured + fine-tuning + ONNX Runtime int8), for LeNet-300-100 and LeNet-5
on Fashion-MNIST, from the foundation study's fp32 models.

Every row is a wattless recipe run on the model of an earlier row (``base``), written to runs/bench/survey/.
Accuracy is measured on the written file (``.wlz`` loaded in PyTorch, ``.onnx`` run in ONNX Runtime). All
variants of a model are timed in the same alternating rounds (1 thread, medians of round medians): ``.wlz``
files in PyTorch eager and as fp32 ONNX in ONNX Runtime, ``.onnx`` files in ONNX Runtime. Speed-ups are
against the fp32 teacher in PyTorch eager at the same batch. Energy: the analytical estimate of every record.
Every choice (the best pipeline within the budget, the lowest-energy pipeline) is made on the validation
split; the chosen row's test figures are then judged against the targets.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from targets import Target, all_met, derived, energy_entry, energy_note, provenance_of, verdict

import wattless
from wattless.deploy import export_onnx
from wattless.errors import DataError
from wattless.io import deployable_module
from wattless.ladder import compress_within_budget
from wattless.measurement import time_interleaved, time_onnx, time_torch
from wattless.measurement.engines import get_engine
from wattless.measurement.latency import time_runner
from wattless.pipeline import file_quality, run_recipe
from wattless.recipe import Recipe
from wattless.report import pareto_plot
from wattless.report.format import format_bytes, format_energy

KD = {"temperature": 2.0, "alpha": 0.5, "epochs": 30, "lr": 0.001}
_PRUNE_STEP, _SHARE_STEP = Recipe.load("deep-compression").to_dict()["steps"]
_BY_HAND_PRUNE = Recipe.load("prune-int8").to_dict()["steps"][0]["prune.structured"]
BASELINE_AND_INT8 = [("baseline", "baseline fp32", None, None),
                     ("int8", "int8 (ONNX Runtime)", "baseline", ["quantize.int8"])]
DEEP_COMPRESSION = [
    ("prune", f"pruning + retraining ({_PRUNE_STEP['prune.magnitude']['sparsity']:.0%})", "baseline", [_PRUNE_STEP]),
    ("deep", f"prune -> quantize (k-means {_SHARE_STEP['share.kmeans']['clusters']}, entropy-coded)", "prune",
     [_SHARE_STEP])]
"""The shipped deep-compression recipe, its two steps as two rows (labels read from the recipe)."""
PRUNED_STUDENT_INT8_AND_BY_HAND = [
    ("kd-pruned-int8", "distill into pruned student -> int8", "kd-pruned", ["quantize.int8"]),
    ("by-hand", f"by hand: Torch-Pruning {_BY_HAND_PRUNE['ratio']:.0%} + fine-tune + ORT int8", "baseline",
     "prune-int8"),
]
ROWS: dict[str, list[tuple[str, str, str | None, Any]]] = {
    # (key, label, base row, recipe: shipped name or list of steps)
    "lenet300": [
        *BASELINE_AND_INT8,
        ("kd", "distillation (fresh copy, 1/4 width)", "baseline",
         [{"distill.hinton": {"student": "teacher-copy", "width": 0.25, "importance": "l1", **KD}}]),
        ("kd-int8", "distill -> int8", "kd", ["quantize.int8"]),
        *DEEP_COMPRESSION,
        ("kd-pruned", "distill into pruned student (1/5 width)", "baseline",
         [{"distill.hinton": {"student": "teacher-pruned", "width": 0.2, "importance": "taylor", **KD}}]),
        *PRUNED_STUDENT_INT8_AND_BY_HAND,
    ],
    "lenet5": [
        *BASELINE_AND_INT8,
        ("kd", "distillation into an MLP (784-256-10)", "baseline",
         [{"distill.hinton": {"student": "mlp", "student_kwargs": {"hidden": [256]}, **KD, "epochs": 20}}]),
        ("kd-int8", "distill -> int8", "kd", ["quantize.int8"]),
        *DEEP_COMPRESSION,
        ("kd-pruned", "distill into pruned student (1/2 width)", "baseline",
         [{"distill.hinton": {"student": "teacher-pruned", "width": 0.5, "importance": "taylor", **KD,
                              "epochs": 20}}]),
        *PRUNED_STUDENT_INT8_AND_BY_HAND,
    ],
}
BATCHES = ((1, 200), (256, 20))
"""(batch size, timed runs per round)."""
THREADS = 1
MAX_DROP = 1.0
"""The accuracy budget (points) of the "best pipeline" choices and of the ladder."""
LADDER_REPEATS = 50
LADDER_BATCHES = (1, 256)
MNIST_TRAIN = {"epochs": 10, "seed": 0}

DEEP300 = (Target("prune -> quantize LeNet-300-100, times smaller", ">=", 60.0),
           Target("prune -> quantize LeNet-300-100 drop (points)", "<=", 1.0))
DEEP5 = (Target("prune -> quantize LeNet-5, times smaller", ">=", 45.0),
         Target("prune -> quantize LeNet-5 drop (points)", "<=", 1.0))
KD_SPEEDUP = Target("distill -> int8 speed-up vs fp32 teacher (both batches)", ">=", 5.0)
KD_DROP = Target("distill -> int8 drop (points)", "<=", 2.0)
BEST300 = {256: Target("best LeNet-300-100 pipeline speed-up at batch 256", ">=", 10.0),
           1: Target("best LeNet-300-100 pipeline speed-up at batch 1", ">=", 5.0)}
BEST5 = Target("best LeNet-5 pipeline speed-up at batch 256", ">=", 4.0)
GREEN300 = Target("estimated energy of the lowest-energy LeNet-300-100 pipeline, times less than fp32", ">=", 20.0,
                  accepts=frozenset({"estimated"}))
LADDER_WITHIN = Target("ladder's chosen model, test drop (points)", "<=", MAX_DROP)


def _recipe(spec: Any) -> Recipe:
    return Recipe.load(spec) if isinstance(spec, str) else Recipe.from_dict({"steps": spec})


def build(name: str, data, out_dir: Path, baseline_path: Path) -> list[dict[str, Any]]:
    """Run every row's recipe on its base row's model; returns rows with their file, model and timing."""
    models = {"baseline": wattless.load(baseline_path)}
    rows = []
    for key, label, base, spec in ROWS[name]:
        started = time.perf_counter()
        if base is None:
            path, model, steps = baseline_path, models["baseline"], []
        else:
            recipe = _recipe(spec)
            suffix = ".onnx" if recipe.int8 else ".wlz"
            result = run_recipe(models[base], data, recipe, out_dir / f"{name}.{key}{suffix}", record=False)
            path, model, steps = result.path, result.model, recipe.step_names
            models[key] = model
        rows.append({"model": name, "key": key, "label": label, "base": base, "steps": steps, "path": path,
                     "module": model.module, "seconds": time.perf_counter() - started,
                     "recipe": spec if isinstance(spec, str) else None})
    return rows


def _timers(rows: list[dict[str, Any]], input_shape, batch: int, repeats: int, tmp: Path) -> dict[str, Any]:
    timers = {}
    for row in rows:
        if row["path"].suffix == ".onnx":
            timers[f"{row['key']}/ort"] = functools.partial(time_onnx, row["path"], input_shape, batch=batch,
                                                            repeats=repeats, threads=THREADS)
            continue
        module = deployable_module(row["module"]).eval()
        onnx_path = tmp / f"{row['key']}.onnx"
        if not onnx_path.exists():
            export_onnx(module, input_shape, onnx_path)
        timers[f"{row['key']}/torch"] = functools.partial(time_torch, module, input_shape, batch=batch,
                                                          repeats=repeats, threads=THREADS)
        timers[f"{row['key']}/ort"] = functools.partial(time_onnx, onnx_path, input_shape, batch=batch,
                                                        repeats=repeats, threads=THREADS)
        if "native" not in row:  # the packed weights exported to C and built once (timed inside the library)
            row["native"] = get_engine("native").load(row["path"], workdir=tmp / f"{row['key']}-native")
        timers[f"{row['key']}/native"] = functools.partial(time_runner, row["native"], batch=batch,
                                                           repeats=repeats)
    return timers


def measure_rows(rows: list[dict[str, Any]], data, rounds: int) -> None:
    """Accuracy (validation and test), size and energy of every file; latency of all of them in the same
    interleaved rounds."""
    fp32_bytes = fp32_kind = None
    for row in rows:
        engines = ("int8",) if row["path"].suffix == ".onnx" else ("torch",)
        record = wattless.measure(row["path"], data, batches=(), engines=engines)
        if fp32_bytes is None:  # the baseline's fp32 state_dict size, for every row
            fp32_bytes, fp32_kind = record["size_bytes_fp32"], provenance_of(record, "size_bytes_fp32")
        estimate, energy_kind = energy_entry(record)  # the analytical estimate, for every row alike
        row.update(record=record, accuracy=record["accuracy"], accuracy_kind=provenance_of(record, "accuracy"),
                   val_accuracy=file_quality(row["path"], data, "val")["accuracy"], size=record["size_bytes"],
                   ratio=fp32_bytes / record["size_bytes"],
                   ratio_kind=derived(fp32_kind, provenance_of(record, "size_bytes")),
                   energy=estimate["value"], energy_kind=energy_kind)
    input_shape = data.input_shape
    with tempfile.TemporaryDirectory() as tmp:
        for batch, repeats in BATCHES:
            timed = time_interleaved(_timers(rows, input_shape, batch, repeats, Path(tmp)), rounds=rounds)
            for row in rows:
                row[f"torch_b{batch}"] = timed.get(f"{row['key']}/torch", {}).get("median")
                row[f"ort_b{batch}"] = timed[f"{row['key']}/ort"]["median"]
                row[f"native_b{batch}"] = timed.get(f"{row['key']}/native", {}).get("median")
    base = rows[0]
    for row in rows:
        row["drop"] = (base["accuracy"] - row["accuracy"]) * 100
        row["val_drop"] = (base["val_accuracy"] - row["val_accuracy"]) * 100
        row["drop_kind"] = derived(base["accuracy_kind"], row["accuracy_kind"])
        row["energy_ratio"] = base["energy"] / row["energy"]
        row["energy_ratio_kind"] = derived(base["energy_kind"], row["energy_kind"])
        row["speed_kind"] = "measured"  # medians of the interleaved timings above
        for batch, _ in BATCHES:
            reference = base[f"torch_b{batch}"]
            row[f"speedup_torch_b{batch}"] = reference / row[f"torch_b{batch}"] if row[f"torch_b{batch}"] else None
            row[f"speedup_ort_b{batch}"] = reference / row[f"ort_b{batch}"]
            native = row[f"native_b{batch}"]
            row[f"speedup_native_b{batch}"] = reference / native if native else None
            row[f"best_b{batch}"] = max(filter(None, (row[f"speedup_torch_b{batch}"], row[f"speedup_ort_b{batch}"],
                                                      row[f"speedup_native_b{batch}"])))


def run(out_dir: Path, *, rounds: int = 7) -> dict[str, Any]:
    data = wattless.load_dataset("fashion-mnist")
    survey_dir = out_dir / "survey"
    survey_dir.mkdir(exist_ok=True)
    rows = []
    for name in ROWS:
        model_rows = build(name, data, survey_dir, out_dir / f"{name}.wlz")
        measure_rows(model_rows, data, rounds)
        rows += model_rows
    records = [{**row["record"], "name": f"{row['model']} {row['key']}", "latency_ms": _latency_entries(row)}
               for row in rows]
    for name in ROWS:
        pareto_plot([r for r in records if r["name"].startswith(f"{name} ")], out_dir / f"survey-{name}.png")
    ladders = {objective: compress_within_budget(wattless.load(out_dir / "lenet300.wlz"), data,
                                                 survey_dir / f"lenet300.best-{objective}{suffix}",
                                                 max_drop=MAX_DROP, objective=objective, repeats=LADDER_REPEATS,
                                                 batches=LADDER_BATCHES, threads=THREADS)
               for objective, suffix in (("latency", ".onnx"), ("size", ".wlz"))}
    markdown = _markdown(rows, rounds) + _ladder_markdown(ladders) + mnist_section(out_dir, rounds)
    return {"rows": rows, "records": records, "markdown": markdown}


def mnist_section(out_dir: Path, rounds: int) -> str:
    """The same table on MNIST when its IDX files are found (baselines trained here, :data:`MNIST_TRAIN`)."""
    try:
        data = wattless.load_dataset("mnist")
    except DataError as exc:
        return f"\n### MNIST\n\nNot run: {exc}\n"
    mnist_dir = out_dir / "survey-mnist"
    mnist_dir.mkdir(exist_ok=True)
    rows = []
    for name in ROWS:
        baseline = mnist_dir / f"{name}.wlz"
        wattless.save(wattless.train(name, data, **MNIST_TRAIN), baseline)
        model_rows = build(name, data, mnist_dir, baseline)
        measure_rows(model_rows, data, rounds)
        rows += model_rows
    return (f"\n### MNIST (baselines trained by this study: {MNIST_TRAIN['epochs']} epochs, seed {MNIST_TRAIN['seed']})"
            "\n\n" + "\n".join(_table(rows)) + "\n")


def _ladder_markdown(ladders: dict[str, Any]) -> str:
    lines = [f"### `wattless compress lenet300.wlz --max-drop {MAX_DROP:g} --objective latency|size` (shipped ladder)",
             "",
             "Every candidate of `recipes/ladder.yaml` for the objective, measured; the budget is checked on the "
             "validation split, then confirmed on the held-out test split. Latency objective: geometric mean of "
             f"the per-sample medians at batch {' and '.join(map(str, LADDER_BATCHES))} on the file's own engine "
             f"({THREADS} thread{'s' if THREADS > 1 else ''}, {LADDER_REPEATS} runs, not interleaved).", "",
             "| objective | candidate | steps | status | val drop | test drop | file | objective value |",
             "|---|---|---|---|---|---|---|---|"]
    for objective, found in ladders.items():
        for row in found.rows:
            value = row.get("objective")
            shown = "–" if value is None else (format_bytes(value) if objective == "size" else f"{value:.4f} ms")
            lines.append(f"| {objective} | {row['candidate']} | {' -> '.join(row['steps'])} | {row['status']} | "
                         f"{_num(row.get('val_drop'))} | {_num(row.get('test_drop'))} | "
                         f"{format_bytes(row['record']['size_bytes']) if 'record' in row else '–'} | {shown} |")
    chosen = [row for found in ladders.values() for row in found.rows if row["status"] == "chosen"]
    if chosen and all(found.path for found in ladders.values()):
        # test drops of files run in this study: measured
        within = all_met(*((LADDER_WITHIN, row["test_drop"], "measured") for row in chosen))
    else:
        within = "**missed** (no model returned for some objective)"
    lines += ["", f"- `--max-drop {MAX_DROP:g}` returned a model within {MAX_DROP:g} point on the test split for every "
              f"objective (each chosen on validation): {within} (chosen: "
              + ", ".join(f"{objective} -> {found.chosen}" for objective, found in ladders.items()) + ").", ""]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _latency_entries(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The interleaved medians in the record layout, so the report and Pareto plot can use them."""
    entries = []
    for batch, _ in BATCHES:
        for engine, key in (("torch", f"torch_b{batch}"), ("onnxruntime", f"ort_b{batch}"),
                            ("native", f"native_b{batch}")):
            if row[key] is not None:
                entries.append({"engine": engine, "batch": batch, "threads": 1, "median": row[key]})
    return entries


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _find(rows, model, key):
    return next(r for r in rows if r["model"] == model and r["key"] == key)


def _best_within(rows: list[dict[str, Any]], model: str, points: float) -> dict[str, Any] | None:
    """The compressed row (not the baseline, not the by-hand pipeline) fastest at batch 256 among those within
    ``points`` on the validation split (None when none is); its test figures are what is then reported."""
    eligible = [r for r in rows if r["model"] == model and r["key"] not in ("baseline", "by-hand")
                and r["val_drop"] <= points]
    return max(eligible, key=lambda r: r["best_b256"], default=None)


def _greenest_within(rows: list[dict[str, Any]], model: str, points: float) -> dict[str, Any] | None:
    """The row with the lowest estimated energy among those within ``points`` on the validation split."""
    eligible = [r for r in rows if r["model"] == model and r["val_drop"] <= points]
    return max(eligible, key=lambda r: r["energy_ratio"], default=None)


def _kd_phrase() -> str:
    """Distillation settings, read from the rows' recipes."""
    epochs, shared = {}, set()
    for model, entries in ROWS.items():
        for _, _, _, spec in entries:
            for step in spec if isinstance(spec, list) else []:
                if isinstance(step, dict) and "distill.hinton" in step:
                    cfg = step["distill.hinton"]
                    epochs.setdefault(model, set()).add(cfg["epochs"])
                    shared.add((cfg["temperature"], cfg["alpha"]))
    settings = "; ".join(f"T={t:g}, alpha={a:g}" for t, a in sorted(shared))
    per_model = ", ".join(f"{model} {'/'.join(map(str, sorted(e)))}" for model, e in epochs.items())
    return f"Knowledge distillation: Hinton soft targets, {settings}; epochs: {per_model}."


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """The survey table's Markdown lines, one row per variant."""
    lines = ["| model | variant | from | val Δ (pts) | accuracy | Δ (pts) | file | smaller | torch b1 ms | ORT b1 ms | "
             "native b1 ms | speed-up b1 (torch / ORT / native) | torch b256 ms | ORT b256 ms | native b256 ms | "
             "speed-up b256 (torch / ORT / native) | energy/sample | less energy | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['label']} | {r['base'] or ''} | {-r['val_drop']:+.2f} | {r['accuracy'] * 100:.2f}% | "
            f"{-r['drop']:+.2f} | "
            f"{format_bytes(r['size'])} | {r['ratio']:.1f}x | {_ms(r['torch_b1'])} | {_ms(r['ort_b1'])} | "
            f"{_ms(r['native_b1'])} | {_x(r['speedup_torch_b1'])} / {_x(r['speedup_ort_b1'])} / "
            f"{_x(r['speedup_native_b1'])} | {_ms(r['torch_b256'])} | {_ms(r['ort_b256'])} | {_ms(r['native_b256'])} | "
            f"{_x(r['speedup_torch_b256'])} / {_x(r['speedup_ort_b256'])} / {_x(r['speedup_native_b256'])} | "
            f"{format_energy(r['energy'])} | {r['energy_ratio']:.1f}x | {r['seconds']:.0f} |")
    return lines


def _speedups(row: dict[str, Any], targets: dict[int, Target]) -> str:
    """``12.34x at batch 256 (>= 10x: met)`` for each batch of ``targets``."""
    return " and ".join(f"{row[f'best_b{batch}']:.2f}x at batch {batch} ({target.op} {target.threshold:g}x: "
                        f"{verdict(target, row[f'best_b{batch}'], row['speed_kind'])})"
                        for batch, target in targets.items())


def _markdown(rows: list[dict[str, Any]], rounds: int) -> str:
    lines = ["## The compression-survey table on Fashion-MNIST (issue 6)", "",
             "From the foundation study's fp32 models. Each row is a wattless recipe applied to the model of the "
             "row named in *from*; `.onnx` rows run in ONNX Runtime only; `.wlz` rows also in the native C runtime "
             "(`wattless export --format c`, built with `-O3 -march=native`, timed inside the library). File: the "
             "written `.wlz` or `.onnx`; "
             f"*smaller*: vs the fp32 state_dict file. Latency: ms per batch, {THREADS} thread"
             f"{'s' if THREADS > 1 else ''}, all rows of a model timed in the same {rounds} alternating rounds "
             "(medians); speed-ups against the fp32 teacher in PyTorch eager at the same batch. *val Δ*: accuracy "
             "change on the validation split, where the best pipelines below are chosen; *accuracy* and *Δ*: the "
             f"test split. {energy_note([r['record'] for r in rows], used='energy_estimate')} {_kd_phrase()}", "",
             *_table(rows)]
    lines += ["", "Recipes (steps per row): " + "; ".join(
        f"{r['model']} {r['key']}: {' -> '.join(r['steps']) if r['steps'] else 'trained fp32'}"
        + (f" (shipped `{r['recipe']}`)" if r["recipe"] else "") for r in rows), ""]
    deep300, deep5 = _find(rows, "lenet300", "deep"), _find(rows, "lenet5", "deep")
    kd300 = _find(rows, "lenet300", "kd-int8")
    best300, best5 = _best_within(rows, "lenet300", MAX_DROP), _best_within(rows, "lenet5", MAX_DROP)
    hand300 = _find(rows, "lenet300", "by-hand")
    green300 = _greenest_within(rows, "lenet300", MAX_DROP)
    within = f"within {MAX_DROP:g} point on validation"
    lines += ["Targets (issue 6):", ""]
    for deep, (size, drop), model in ((deep300, DEEP300, "LeNet-300-100"), (deep5, DEEP5, "LeNet-5")):
        ok = all_met((size, deep["ratio"], deep["ratio_kind"]), (drop, deep["drop"], deep["drop_kind"]))
        lines.append(f"- Prune -> quantize, {model}: {deep['ratio']:.1f}x smaller at {deep['drop']:.2f} points "
                     f"({size.op} {size.threshold:g}x at {drop.op} {drop.threshold:g}: {ok}).")
    kd_ok = all_met((KD_SPEEDUP, kd300["speedup_ort_b1"], kd300["speed_kind"]),
                    (KD_SPEEDUP, kd300["speedup_ort_b256"], kd300["speed_kind"]),
                    (KD_DROP, kd300["drop"], kd300["drop_kind"]))
    lines.append(f"- Distill -> int8 student, LeNet-300-100: {kd300['speedup_ort_b1']:.2f}x at batch 1 and "
                 f"{kd300['speedup_ort_b256']:.2f}x at batch 256 vs the fp32 teacher in PyTorch eager, drop "
                 f"{kd300['drop']:.2f} ({KD_SPEEDUP.op} {KD_SPEEDUP.threshold:g}x both, {KD_DROP.op} "
                 f"{KD_DROP.threshold:g} points: {kd_ok}).")
    if best300 is None:
        lines.append(f"- Best pipeline {within}, LeNet-300-100: none is (**missed**).")
    else:
        beats = all_met(*((Target(f"speed-up at batch {b} over the by-hand pipeline's", ">", hand300[f"best_b{b}"]),
                           best300[f"best_b{b}"], best300["speed_kind"]) for b in (256, 1)))
        lines.append(
            f"- Best pipeline {within}, LeNet-300-100 (the fastest at batch 256 among them): {best300['label']} "
            f"(val drop {best300['val_drop']:.2f}), {_speedups(best300, BEST300)}, test drop {best300['drop']:.2f}; "
            f"the by-hand pipeline in the same run: {hand300['best_b256']:.2f}x / {hand300['best_b1']:.2f}x at "
            f"{hand300['drop']:.2f} test points (beaten at both batches: {beats}).")
    if best5 is None:
        lines.append(f"- Best pipeline {within}, LeNet-5: none is (**missed**).")
    else:
        lines.append(f"- Best pipeline {within}, LeNet-5 (the fastest at batch 256 among them): {best5['label']} "
                     f"(val drop {best5['val_drop']:.2f}), {_speedups(best5, {256: BEST5})}, test drop "
                     f"{best5['drop']:.2f}.")
    if green300 is None:
        lines.append(f"- Issue 7, lowest estimated energy {within}, LeNet-300-100: none is (**missed**).")
    else:
        kind = green300["energy_ratio_kind"]
        lines.append(
            f"- Issue 7, lowest {kind} energy {within}, LeNet-300-100: {green300['label']} "
            f"(val drop {green300['val_drop']:.2f}), {green300['energy_ratio']:.1f}x less {kind} energy than fp32 "
            f"({GREEN300.op} {GREEN300.threshold:g}x: {verdict(GREEN300, green300['energy_ratio'], kind)}), test drop "
            f"{green300['drop']:.2f}.")
    lines += ["", "![LeNet-300-100: accuracy vs size and latency](benchmarks/results/survey-lenet300.png)",
              "![LeNet-5: accuracy vs size and latency](benchmarks/results/survey-lenet5.png)", ""]
    return "\n".join(lines)
