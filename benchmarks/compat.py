"""The compatibility matrix (issue 16): which operation works on which architecture, found by running each one.

Rows are the zoo, the Hugging Face architectures (extra ``hf``) and hand-written user modules
(:mod:`usermodules`); columns are operations. Every cell runs the operation through the public API on a small
synthetic task the row's model learns (images, series or token ids, 4 classes), then checks the result against the
uncompressed model: lossless operations must give the same outputs (:data:`LOSSLESS_TOLERANCE`), lossy ones must
keep test accuracy within their stated drop (:data:`COLUMNS`) and, where they compress, write a smaller file.
A cell is *works*, *refused* (one clear wattless error: its reason is listed), *wrong* (ran but failed its check)
or *fails* (an exception that is not a wattless error: a traceback, i.e. a bug). Tracebacks go to
``runs/bench/compat/tracebacks.txt``.
"""

from __future__ import annotations

import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wattless
from wattless.errors import WattlessError
from wattless.train import predict

sys.path.insert(0, str(Path(__file__).resolve().parent))  # usermodules, as a user's own package on the path

CLASSES = 4
TRAIN_SAMPLES, TEST_SAMPLES = 480, 200
EPOCHS = 20
BATCH = 32
LR = 3e-3
FINETUNE = 5
"""Fine-tuning epochs (at the training learning rate :data:`LR`) of every technique that fine-tunes; k-means keeps
its own learning rate for the centroids. Distillation trains its student for :data:`DISTILL_EPOCHS`."""
DISTILL_EPOCHS = 10
LOSSLESS_TOLERANCE = 1e-4
"""Largest output difference of a lossless operation, relative to the largest output (1e-3 for the C library,
whose sums run in another order)."""

TRAINING: dict[str, dict[str, Any]] = {
    # rows whose model does not learn the task at the common settings (lr 3e-3 is high for BERT; MobileNet's
    # small-batch BatchNorm needs longer): their training and fine-tuning settings
    "mobilenet (width 0.25)": {"epochs": 40},
    "hf:bert": {"epochs": 30, "lr": 1e-3},
}
ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # row: (model name, input kind, model kwargs)
    "mlp": ("mlp", "image", {}),
    "lenet300": ("lenet300", "image", {}),
    "lenet5": ("lenet5", "image", {}),
    "cnn (8-16 channels)": ("cnn", "image", {"channels": [8, 16]}),
    "resnet18 (width 0.25)": ("resnet18", "image", {"width": 0.25}),
    "mobilenet (width 0.25)": ("mobilenet", "image", {"width": 0.25}),
    "ts_transformer": ("ts_transformer", "series", {}),
    "hf:patchtst": ("hf:patchtst", "series", {}),
    "hf:vit": ("hf:vit", "image", {}),
    "hf:convnext": ("hf:convnext", "image", {}),
    "hf:resnet (hidden 32-64)": ("hf:resnet", "image", {"embedding_size": 32, "hidden_sizes": [32, 64]}),
    "hf:mobilevit": ("hf:mobilevit", "image", {}),
    "hf:bert": ("hf:bert", "tokens", {"vocab_size": 64}),
    "split/concat/skip": ("usermodules:SplitConcatSkip", "image", {}),
    "grouped + depthwise conv": ("usermodules:GroupedDepthwise", "image", {}),
    "attention (nn.MultiheadAttention)": ("usermodules:TokenAttention", "tokens", {}),
    "LSTM": ("usermodules:SeriesLSTM", "series", {}),
    "GRU (bidirectional)": ("usermodules:SeriesGRU", "series", {}),
    "embedding bag": ("usermodules:TokenEmbedding", "tokens", {}),
    "loops, branches, dict output": ("usermodules:LoopsAndBranches", "image", {}),
}


@dataclass
class Cell:
    status: str  # works | refused | wrong | fails | not run
    detail: str = ""
    seconds: float = 0.0


class Wrong(Exception):
    """The operation ran but its result failed the cell's check."""


def make_data(kind: str, seed: int = 0) -> wattless.Dataset:
    """A 4-class task a small model learns in a few epochs: the brightest image quadrant, the frequency of a
    series' sine, or which of four marker tokens a sequence holds."""
    rng = np.random.default_rng(seed)
    n = TRAIN_SAMPLES + TEST_SAMPLES
    y = np.arange(n) % CLASSES
    rng.shuffle(y)
    if kind == "image":
        X = rng.normal(0, 0.5, (n, 1, 16, 16)).astype(np.float32)
        for i, label in enumerate(y):
            row, col = divmod(int(label), 2)
            X[i, 0, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 1.0
    elif kind == "series":
        t = np.linspace(0, 1, 40, dtype=np.float32)
        phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
        X = (np.sin(2 * np.pi * (y[:, None, None] + 1) * t + phase) + rng.normal(0, 0.3, (n, 3, 40))).astype(np.float32)
    else:
        X = rng.integers(CLASSES, 64, (n, 16))
        X[np.arange(n), rng.integers(0, 16, n)] = y
    return wattless.Dataset.from_arrays(X[:TRAIN_SAMPLES], y[:TRAIN_SAMPLES], name=f"synthetic-{kind}",
                                        test=(X[TRAIN_SAMPLES:], y[TRAIN_SAMPLES:]))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((outputs.argmax(1) == labels).mean())


def onnx_outputs(path: Path, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    dtype = np.int64 if "int64" in feed.type else np.float32
    return session.run(None, {feed.name: X.astype(dtype)})[0]


def same_outputs(got: np.ndarray, expected: np.ndarray, tolerance: float = LOSSLESS_TOLERANCE) -> str:
    difference = float(np.abs(got - expected).max())
    scale = max(float(np.abs(expected).max()), 1e-6)
    if got.shape != expected.shape or difference > tolerance * scale:
        raise Wrong(f"outputs differ by {difference:.3g} (relative {difference / scale:.2g} > {tolerance:g})")
    return f"max diff {difference / scale:.1g}"


class Row:
    """One architecture: its data, the trained model, its file, and a cell per operation."""

    def __init__(self, name: str, model: str, kind: str, kwargs: dict[str, Any], folder: Path):
        self.name, self.model_name, self.kwargs = name, model, kwargs
        self.training = {"epochs": EPOCHS, "lr": LR, **TRAINING.get(name, {})}
        self.tune = f"finetune_epochs={FINETUNE},lr={self.training['lr']}"
        self.data = make_data(kind)
        self.folder = folder
        self.model: wattless.WattlessModel | None = None
        self.reference: np.ndarray | None = None
        self.acc = 0.0

    @property
    def fp32_file(self) -> Path:
        return self.folder / "fp32.wlz"

    def train(self) -> str:
        self.model = wattless.train(self.model_name, self.data, model_kwargs=self.kwargs, batch_size=BATCH,
                                    seed=0, trust_code=True, **self.training)
        self.reference = predict(self.model.module.eval(), self.data.X_test)
        self.acc = accuracy(self.reference, self.data.y_test)
        chance = 1 / CLASSES
        if self.acc < chance + 0.25:
            raise Wrong(f"test accuracy {self.acc:.1%} after {self.training['epochs']} epochs (chance {chance:.0%})")
        wattless.save(self.model, self.fp32_file)
        return f"{self.acc:.0%}"

    def save_load(self) -> str:
        loaded = wattless.load(self.fp32_file, trust_code=True)
        return same_outputs(predict(loaded.module.eval(), self.data.X_test), self.reference)

    def onnx_fp32(self) -> str:
        path = wattless.export(self.model, self.folder / "fp32.onnx")
        return same_outputs(onnx_outputs(path, self.data.X_test), self.reference)

    def int8(self, mode: str, drop: float) -> str:
        path = wattless.export(self.model, self.folder / f"int8-{mode}.onnx", int8=True, int8_mode=mode,
                               dataset=self.data)
        fp32 = self.folder / "fp32.onnx"
        if not fp32.exists():
            wattless.export(self.model, fp32)
        return self._judge(onnx_outputs(path, self.data.X_test), drop, path.stat().st_size, fp32.stat().st_size)

    def technique(self, step: str | Callable[[], str], drop: float, label: str) -> str:
        step = step() if callable(step) else step
        out = self.folder / f"{label}.wlz"
        wattless.compress(self.fp32_file, self.data, out, steps=[step], measure_result=False, trust_code=True,
                          force=True)
        compressed = wattless.load(out, trust_code=True)
        got = predict(compressed.module.eval(), self.data.X_test)
        return self._judge(got, drop, out.stat().st_size, self.fp32_file.stat().st_size)

    def factorize_step(self) -> str:
        """Tucker-2 when the model holds more weights in Conv2d layers than in Linear ones, else SVD."""
        weights = {kind: sum(m.weight.numel() for m in self.model.module.modules() if type(m) is kind)
                   for kind in (torch.nn.Conv2d, torch.nn.Linear)}
        tucker = weights[torch.nn.Conv2d] > weights[torch.nn.Linear]
        return ("factorize.tucker:" if tucker else "factorize.svd:ratio=0.5,") + self.tune

    def native_c(self) -> str:
        from wattless.runtime.build import compile_c
        from wattless.runtime.library import NativeRunner

        folder = wattless.export(self.model, self.folder / "c", format="c")
        from wattless.runtime.export import generate

        _, layout = generate(self.model)
        built = compile_c([folder / "model.c"], self.folder / "model.so", flags=("-O2",), shared=True)
        got = NativeRunner(built.path, layout.input_shape, layout.output_size, layout.arena_bytes).predict(
            self.data.X_test.astype(np.float32))
        return same_outputs(got.reshape(self.reference.shape), self.reference, 1e-3)

    def measure(self) -> str:
        record = wattless.measure(self.model, self.data, engines="torch,onnxruntime", batches="1", repeats=3)
        if abs(record["accuracy"] - self.acc) > 1e-9:
            raise Wrong(f"measure's accuracy {record['accuracy']:.4f} is not the model's {self.acc:.4f}")
        engines = {entry["engine"] for entry in record["latency_ms"]}
        if engines != {"torch", "onnxruntime"}:
            raise Wrong(f"latency measured on {sorted(engines)} only")
        return f"{record['size_bytes'] / 1024:.0f} KB"

    def _judge(self, outputs: np.ndarray, drop: float, size: int, baseline_size: int | None) -> str:
        got = accuracy(outputs, self.data.y_test)
        points = (self.acc - got) * 100
        if points > drop:
            raise Wrong(f"accuracy {got:.1%} is {points:.1f} points below the model's (tolerance {drop:g})")
        if baseline_size is not None and size >= baseline_size:
            raise Wrong(f"file {size:,} B is not smaller than the original's {baseline_size:,} B")
        return f"{got:.0%}, {baseline_size / size:.1f}x"


COLUMNS: list[tuple[str, str, Callable[[Row], str]]] = [
    # column, tolerance stated in the table, operation
    ("train", "test acc >= chance + 25 pts", Row.train),
    ("save/load", "same outputs", Row.save_load),
    ("ONNX fp32", "same outputs", Row.onnx_fp32),
    ("int8 static", "drop <= 5 pts, smaller", lambda r: r.int8("static", 5)),
    ("int8 dynamic", "drop <= 5 pts, smaller", lambda r: r.int8("dynamic", 5)),
    ("PTQ 4-bit", "drop <= 10 pts, smaller", lambda r: r.technique("quantize.ptq:bits=4", 10, "ptq4")),
    ("QAT 4-bit", "drop <= 5 pts, smaller",
     lambda r: r.technique(f"quantize.qat:bits=4,{r.tune}", 5, "qat4")),
    ("magnitude 50%", "drop <= 5 pts, smaller",
     lambda r: r.technique(f"prune.magnitude:sparsity=0.5,{r.tune}", 5, "magnitude")),
    ("N:M 2:4", "drop <= 5 pts, smaller", lambda r: r.technique(f"prune.nm:{r.tune}", 5, "nm")),
    ("structured 50%", "drop <= 15 pts, smaller",
     lambda r: r.technique(f"prune.structured:ratio=0.5,{r.tune}", 15, "structured")),
    ("SVD/Tucker", "Tucker-2 (ratio 0.5) where Conv2d layers hold most weights, else SVD (ratio 0.5); drop <= 15 "
     "pts, smaller", lambda r: r.technique(r.factorize_step, 15, "factorized")),
    ("k-means 16", "drop <= 5 pts, smaller",
     lambda r: r.technique(f"share.kmeans:clusters=16,finetune_epochs={FINETUNE}", 5, "kmeans")),
    ("distillation", "drop <= 15 pts, smaller",
     lambda r: r.technique(f"distill.hinton:epochs={DISTILL_EPOCHS},lr={r.training['lr']}", 15, "distilled")),
    ("native C", "same outputs (1e-3)", Row.native_c),
    ("measure", "record's accuracy = model's", Row.measure),
]


def run_cell(row: Row, operation: Callable[[Row], str], log) -> Cell:
    started = time.perf_counter()
    try:
        detail = operation(row)
        status = "works"
    except WattlessError as error:
        status, detail = "refused", str(error).splitlines()[0] if str(error) else type(error).__name__
    except Wrong as error:
        status, detail = "wrong", str(error)
    except Exception as error:  # a traceback: a wattless bug to fix, logged in full
        status, detail = "fails", f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error) else ''}"
        log.write(f"\n=== {row.name} ===\n{traceback.format_exc()}")
    return Cell(status, detail, time.perf_counter() - started)


def run(out_dir: Path, rows: list[str] | None = None) -> dict[str, Any]:
    """Every cell of the matrix (``rows`` to run a few), and its Markdown section."""
    import importlib.util

    folder = out_dir / "compat"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    has_hf = importlib.util.find_spec("transformers") is not None
    results: dict[str, list[Cell]] = {}
    with (folder / "tracebacks.txt").open("w") as log:
        for name in rows or list(ROWS):
            model, kind, kwargs = ROWS[name]
            if model.startswith("hf:") and not has_hf:
                continue
            row = Row(name, model, kind, kwargs, folder / name.replace("/", "-").replace(" ", "_"))
            row.folder.mkdir()
            cells = [run_cell(row, COLUMNS[0][2], log)]
            for _, _, operation in COLUMNS[1:]:
                cells.append(run_cell(row, operation, log) if cells[0].status == "works"
                             else Cell("not run", "the model did not train"))
            results[name] = cells
            print(f"{name}: " + " ".join(c.status[0] for c in cells) + f" ({sum(c.seconds for c in cells):.0f} s)",
                  flush=True)
    return {"results": results, "markdown": markdown(results, has_hf)}


SYMBOL = {"works": "✓", "refused": "refused", "wrong": "**wrong**", "fails": "**fails**", "not run": "not run"}


def markdown(results: dict[str, list[Cell]], has_hf: bool) -> str:
    cells = [cell for row in results.values() for cell in row]
    counts = {status: sum(cell.status == status for cell in cells) for status in SYMBOL}
    share = counts["works"] / len(cells) if cells else 0.0
    lines = [
        "## Compatibility matrix (issue 16)",
        "",
        f"Each cell ran the operation through the public API on a small synthetic task ({CLASSES} classes, "
        f"{TRAIN_SAMPLES} training and {TEST_SAMPLES} test samples: the brightest quadrant of a 16x16 image, the "
        "frequency of a 3-channel series of 40 steps, or which marker token a 16-token sequence holds), after "
        f"training the row's model for {EPOCHS} epochs (batch {BATCH}, lr {LR:g}; "
        + ", ".join(f"{row}: " + ", ".join(f"{k} {v:g}" for k, v in settings.items())
                    for row, settings in TRAINING.items())
        + f"). Lossy techniques fine-tune for {FINETUNE} epochs at the training lr (k-means at its own centroid lr; "
        "distillation trains the student for "
        f"{DISTILL_EPOCHS}) with their other settings at the defaults, and are judged on test accuracy against "
        "the uncompressed model and on the size of the "
        "file they write; lossless ones must give the uncompressed model's outputs. Checks per column: "
        + "; ".join(f"*{column}*: {tolerance}" for column, tolerance, _ in COLUMNS) + ". "
        "User modules are `benchmarks/usermodules.py`, named as `usermodules:Class` (trust_code)."
        + ("" if has_hf else " Hugging Face rows skipped: transformers is not installed (extra `hf`)."),
        "",
        "| architecture | " + " | ".join(column for column, _, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    reasons: dict[str, list[str]] = {}
    for name, row in results.items():
        shown = []
        for (column, _, _), cell in zip(COLUMNS, row, strict=True):
            if cell.status == "works":
                shown.append("✓")
            else:
                note = f"{cell.status}: {cell.detail}"
                reasons.setdefault(note, []).append(f"{name} / {column}")
                shown.append(f"{SYMBOL[cell.status]} [{_note_id(reasons, note)}]")
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    lines += ["", f"{counts['works']} of {len(cells)} cells work ({share:.0%}); {counts['refused']} refused with "
              f"one clear error; {counts['wrong']} wrong; {counts['fails']} end in a traceback.", ""]
    for index, (note, where) in enumerate(reasons.items(), 1):
        lines.append(f"{index}. {note} ({', '.join(where)})")
    lines += ["", "Targets (issue 16):", "",
              f"- cells that work: {share:.0%} (>= 90%: {'met' if share >= 0.9 else 'missed'}).",
              f"- cells ending in a traceback or a wrong result: {counts['fails'] + counts['wrong']} "
              f"(0: {'met' if counts['fails'] + counts['wrong'] == 0 else 'missed'})."]
    return "\n".join(lines) + "\n"


def _note_id(reasons: dict[str, list[str]], note: str) -> int:
    return list(reasons).index(note) + 1


if __name__ == "__main__":
    study = run(Path("runs/bench"), sys.argv[1:] or None)
    print(study["markdown"])
