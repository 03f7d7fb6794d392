"""Sweep study (issue 8): a 48-trial sweep on digits with 1 and with 2 workers in the same run, and the
kill/resume check (the real command killed with SIGKILL at 5 random points, then run to completion).

The grid: an MLP 64-32-10 trained 10 epochs, 4 seeds x 12 recipes (the baseline and 11 cheap techniques),
each result measured as by default (PyTorch and ONNX Runtime, batch 1 and 256, 1 thread). Both timed runs
start from a fresh database and output folder, so each trains its 4 base models and runs all 48 trials;
the workers are started by the sweep, so their start-up is part of the time.

`python benchmarks/sweep.py OUT_DIR` runs it alone; `run(out_dir)` returns the Markdown section.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from targets import Target, verdict

import wattless
from wattless.deploy import OnnxModel
from wattless.runs import RunsDB, load_study, run_sweep

RECIPES = (
    [{"name": f"ptq{bits}", "steps": [{"quantize.ptq": {"bits": bits}}]} for bits in (2, 3, 4, 6, 8)]
    + [{"name": f"prune{s}", "steps": [{"prune.magnitude": {"sparsity": s / 100, "finetune_epochs": 2}}]}
       for s in (50, 80, 90)]
    + [{"name": "nm2:4", "steps": [{"prune.nm": {"n": 2, "m": 4, "finetune_epochs": 2}}]},
       {"name": "kmeans16", "steps": [{"share.kmeans": {"clusters": 16, "finetune_epochs": 1}}]},
       {"name": "int8", "steps": ["quantize.int8"]}]
)
STUDY = {"name": "sweep-bench", "models": [{"name": "mlp", "kwargs": {"hidden": [32]}}], "datasets": ["digits"],
         "seeds": [0, 1, 2, 3], "train": {"epochs": 10, "lr": 0.01}, "recipes": RECIPES}
TARGET_SPEEDUP = 1.7
SPEEDUP = Target("sweep wall-time speed-up with 2 workers", ">=", TARGET_SPEEDUP)
THREADS = 1
"""Torch threads per worker."""
COMMAND = [sys.executable, "-c", "from wattless.cli import main; main()", "sweep"]


def write_study(folder: Path, seeds: list[int]) -> Path:
    path = folder / "sweep-bench.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "seeds": seeds}, sort_keys=False))
    return path


def timed_sweep(study_path: Path, folder: Path, workers: int) -> dict[str, Any]:
    """Wall time of the whole sweep from a fresh database and output folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    study = load_study(study_path)
    started = time.perf_counter()
    result = run_sweep(study, db=folder / "runs.db", out=folder / "out", workers=workers, threads=THREADS)
    seconds = time.perf_counter() - started
    with RunsDB(folder / "runs.db") as runs:
        trial_seconds = [row["seconds"] for row in runs.list() if row["seconds"] is not None]
    return {"workers": workers, "seconds": seconds, "trials": result.ran, "failed": len(result.failed),
            "median_trial_s": sorted(trial_seconds)[len(trial_seconds) // 2] if trial_seconds else None}


def _done(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def kill_and_resume(study_path: Path, folder: Path, *, kills: int = 5, seed: int = 8) -> dict[str, Any]:
    """Kill the whole process group of `wattless sweep` at random points (each after at least one new trial
    finished), run it to completion, and count what was lost, duplicated or left half-written."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db, out = folder / "runs.db", folder / "out"
    command = [*COMMAND, str(study_path), "--db", str(db), "--out", str(out), "--workers", "2", "--quiet"]
    rng, done_at_kill = random.Random(seed), []
    for _ in range(kills):
        before = _done(db)
        proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while _done(db) <= before and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 1.0))
        if proc.poll() is not None:
            break  # finished before this kill
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done_at_kill.append(_done(db))
    final = subprocess.run(command, capture_output=True, text=True)
    keys = [trial.key for trial in load_study(study_path).trials()]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, status, artifact FROM runs").fetchall()
    unreadable = 0
    for _, _, artifact in rows:
        try:
            if artifact.endswith(".onnx"):
                OnnxModel(artifact)  # an ONNX Runtime session: the file parses and checks
            else:
                wattless.load(artifact)
        except Exception:
            unreadable += 1
    found = [key for key, status, _ in rows if status == "done"]
    return {"kills": len(done_at_kill), "done_at_kill": done_at_kill, "final_rc": final.returncode,
            "grid": len(keys), "rows": len(rows), "lost": len(set(keys) - set(found)),
            "duplicated": len(rows) - len({key for key, _, _ in rows}), "unreadable": unreadable,
            "leftovers": sum(1 for p in out.rglob("*") if p.name.startswith(".") or ".tmp" in p.name)}


def _recipe_phrase(recipes: list[tuple[str, dict[str, Any] | None]]) -> str:
    """The grid's recipes, grouped by technique, read from the study itself."""
    groups: dict[str, list[str]] = {}
    for name, recipe in recipes:
        if recipe is None:
            groups.setdefault("baseline", [])
            continue
        steps = recipe["steps"]
        technique = next(iter(steps[0])) if isinstance(steps[0], dict) else steps[0]
        groups.setdefault(technique, []).append(name)
    return ", ".join(f"{technique} ({'/'.join(names)})" if names else technique for technique, names in groups.items())


def describe_grid(study) -> str:
    """Models, data sets, training, recipes and measurement of the sweep, from the loaded study."""
    parts = []
    for model in study.models:
        kwargs = model.get("kwargs") or {}
        hidden = kwargs.get("hidden")
        parts.append(f"{model['name']}" + (f" (hidden {'-'.join(map(str, hidden))})" if hidden else ""))
    train = ", ".join(f"{key} {value}" for key, value in study.train.items()
                      if key in STUDY["train"])  # the fields the study sets; the rest are defaults
    m = study.measure
    return (f"{', '.join(parts)} on {', '.join(d['name'] for d in study.datasets)} ({train}), {len(study.seeds)} "
            f"seeds x {len(study.recipes)} recipes: {_recipe_phrase(study.recipes)}; each result measured with "
            f"{'/'.join(m.engines)} at batch {'/'.join(map(str, m.batches))}, {m.threads} thread"
            f"{'s' if m.threads > 1 else ''}, {m.repeats} runs, energy meter '{m.energy_meter}'")


def run(out_dir: Path, *, seeds: list[int] | None = None, kills: int = 5) -> dict[str, Any]:
    """Time the sweep with 1 and 2 workers, then run the kill/resume check; returns the Markdown section."""
    out_dir = Path(out_dir) / "sweep"
    out_dir.mkdir(parents=True, exist_ok=True)
    study_path = write_study(out_dir, seeds if seeds is not None else STUDY["seeds"])
    timings = [timed_sweep(study_path, out_dir / f"workers{n}", n) for n in (1, 2)]
    speedup = timings[0]["seconds"] / timings[1]["seconds"]
    check = kill_and_resume(study_path, out_dir / "kills", kills=kills)
    met = verdict(SPEEDUP, speedup, "measured")  # two wall-clock times of the same sweep in this run
    lines = [
        "## Sweeps: parallel speed-up and kill/resume",
        "",
        f"`wattless sweep` on a {timings[0]['trials']}-trial grid: {describe_grid(load_study(study_path))}. Each "
        "run starts from an empty database and output folder (base models trained, worker start-up included). "
        f"Local process pool, {THREADS} torch thread{'s' if THREADS > 1 else ''} per worker. Every recipe is "
        "reported and none is chosen.",
        "",
        "| workers | wall time | trials | failed | median trial |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {t['workers']} | {t['seconds']:.1f} s | {t['trials']} | {t['failed']} | {t['median_trial_s']:.2f} s |"
          for t in timings],
        "",
        f"Speed-up with {timings[1]['workers']} workers over {timings[0]['workers']}: **{speedup:.2f}x** "
        f"(target {SPEEDUP.op} {SPEEDUP.threshold:g}x: {met}).",
        "",
        f"Kill/resume: the command (parent, forkserver and workers: its whole process group) was killed with "
        f"SIGKILL {check['kills']} times at random points, each after at least one more trial had finished "
        f"(done trials at each kill: {', '.join(map(str, check['done_at_kill']))}), then run to completion "
        f"(exit code {check['final_rc']}). Grid {check['grid']} trials, {check['rows']} rows: "
        f"**{check['lost']} lost, {check['duplicated']} duplicated**, {check['unreadable']} unreadable artifacts, "
        f"{check['leftovers']} temporary files left.",
        "",
    ]
    return {"markdown": "\n".join(lines), "timings": timings, "speedup": speedup, "kill_check": check}


if __name__ == "__main__":
    print(run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/bench"))["markdown"])
