"""Our packed file vs NNCodec (MPEG NNC, ISO/IEC 15938-17, Fraunhofer HHI's reference codec) vs the entropy floor.

For a pruned + k-means-shared ``.wlz`` (``CodebookWeight`` weights, ``AffineWeight`` biases), per layer:

- **floor**: what the stored symbols need at least, with no tables: the positions of the non-zero codes
  ``numel * H(K / numel)`` bits plus the ``K`` non-zero codes' order-0 empirical entropy ``K * H0`` bits;
- **ours**: the bytes the file stores for the weight codes alone, and for the whole layer (codes, codebook,
  bias codes, scale, offset), read from the file's table;
- **NNCodec**: the same weights encoded by NNCodec in its own environment (``benchmarks/_nncodec_worker.py``),
  bitstream bytes, decoded again and checked (see that file for what each figure codes).

NNCodec needs numpy < 2 and a C++ build of its DeepCABAC extension, so it lives in its own virtual
environment outside the checkout, built by ``make nncodec-env`` (pinned: numpy 1.26.4, pybind11 2.13.6,
setuptools 75.8.0, wheel 0.45.1, then ``nncodec==2.1.3`` from its source package with ``--no-deps
--no-build-isolation``). Its python is ``$WATTLESS_NNCODEC_PYTHON``, else ``../nnc-venv/bin/python`` beside the
repository. Without it the
floor and our bytes are still reported, and the NNCodec columns say "not run".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wattless
from wattless.artifact.breakdown import floor_bytes
from wattless.artifact.reader import read_stored_sizes
from wattless.packed import AffineWeight, CodebookWeight

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_nncodec_worker.py"
DEFAULT_ENV = ROOT.parent / "nnc-venv"
NOT_RUN = "not run: NNCodec environment missing; run `make nncodec-env`"
FILES = ("lenet300.search-size.wlz", "lenet300.prune90+kmeans16.wlz", "survey/lenet300.deep.wlz",
         "survey/lenet5.deep.wlz")
"""Files of ``runs/bench`` that :func:`run` compares, when present."""


def env_python() -> Path:
    """The NNCodec environment's python: ``$WATTLESS_NNCODEC_PYTHON`` or ``../nnc-venv/bin/python``."""
    return Path(os.environ.get("WATTLESS_NNCODEC_PYTHON", DEFAULT_ENV / "bin" / "python"))


def entropy_floor(codes: np.ndarray) -> dict[str, float]:
    """Bytes the codes need at least (no tables): ``mask`` = numel * H(K / numel) bits for where the K non-zero
    codes are, ``values`` = K * H0 bits for the non-zero codes (order-0 empirical entropy), and ``total``: the
    library's floor (:func:`wattless.artifact.breakdown.floor_bytes`), which ``wattless inspect`` reports too."""
    mask, values = floor_bytes(torch.as_tensor(np.asarray(codes).astype(np.int64)))
    return {"mask": mask, "values": values, "total": mask + values}


def levels(codes: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """The codes as signed integers ordered like their values: codebook entries ranked by value, the first
    non-negative entry at 0 (NNC's codebook convention). A bijection on codes; per row for (C, L) codebooks."""
    codes = np.asarray(codes, dtype=np.int64)
    codebook = np.asarray(codebook, dtype=np.float64)
    if codebook.ndim == 1:
        return _ranked(codebook)[codes].astype(np.int32)
    rows = codes.reshape(codes.shape[0], -1)
    out = np.stack([_ranked(book)[row] for book, row in zip(codebook, rows, strict=True)])
    return out.reshape(codes.shape).astype(np.int32)


def _ranked(book: np.ndarray) -> np.ndarray:
    ranks = np.empty(book.size, dtype=np.int64)
    ranks[np.argsort(book, kind="stable")] = np.arange(book.size)
    return ranks - int(np.sum(book < 0))


def extract(model: wattless.WattlessModel) -> dict[str, dict[str, Any]]:
    """Per layer (module name) whose weight is a ``CodebookWeight``: ``codes`` (int32), ``codebook`` (float32),
    and the bias's ``bias_codes`` (int32), ``bias_scale``, ``bias_offset`` when it is an ``AffineWeight``.
    ``model`` must be loaded with ``keep_parametrizations=True``."""
    layers: dict[str, dict[str, Any]] = {}
    for name, module in model.module.named_modules():
        chains = getattr(module, "parametrizations", None)
        if chains is None or "weight" not in chains or not isinstance(chains["weight"][-1], CodebookWeight):
            continue
        packed = chains["weight"][-1]
        layer = {"codes": packed.codes.numpy().astype(np.int32), "codebook": packed.codebook.numpy().astype(np.float32)}
        if "bias" in chains and isinstance(chains["bias"][-1], AffineWeight):
            bias = chains["bias"][-1]
            layer |= {"bias_codes": bias.codes.numpy().astype(np.int32), "bias_scale": bias.scale.numpy(),
                      "bias_offset": bias.offset.numpy()}
        layers[name] = layer
    return layers


def _bias_levels(layer: dict[str, Any]) -> np.ndarray:
    """Bias codes minus their zero point (the code of a zero bias), so that NNCodec codes small magnitudes."""
    scale, offset = layer["bias_scale"].astype(np.float64), layer["bias_offset"].astype(np.float64)
    zero = np.round(-offset / np.where(scale == 0, 1.0, scale)) if scale.size == 1 else 0.0
    return (layer["bias_codes"] - np.int64(zero)).astype(np.int32)


def write_npz(layers: dict[str, dict[str, Any]], path: Path) -> None:
    """The worker's input: ``w/L`` dense float32 weights, ``q/L`` signed levels, ``b/L`` bias levels (no pickle)."""
    arrays = {}
    for name, layer in layers.items():
        codes, book = layer["codes"], layer["codebook"]
        dense = book[codes] if book.ndim == 1 else np.take_along_axis(
            book, codes.reshape(codes.shape[0], -1), axis=1).reshape(codes.shape)
        arrays[f"w/{name}"] = dense.astype(np.float32)
        arrays[f"q/{name}"] = levels(codes, book)
        if "bias_codes" in layer:
            arrays[f"b/{name}"] = _bias_levels(layer)
    np.savez(path, **arrays)


def run_worker(python: Path, npz: Path, timeout: float = 900) -> dict[str, Any]:
    """Run the worker in the NNCodec environment; its JSON, or ``{"error": ...}`` when it fails."""
    try:
        done = subprocess.run([str(python), "-I", str(WORKER), str(npz)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"error": f"failed: {type(error).__name__}: {error}"}
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        return {"error": f"failed (exit {done.returncode}): {lines[-1]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(path: str | Path, python: str | Path | None = None) -> dict[str, Any]:
    """Floor, our bytes and NNCodec's bytes for each shared layer of the ``.wlz`` at ``path`` (see module doc).

    ``status`` is ``"ok"``, :data:`NOT_RUN` when the NNCodec environment is missing, or ``"failed: ..."``;
    the floor and our bytes are there in every case.
    """
    path = Path(path)
    python = Path(python) if python is not None else env_python()
    layers = extract(wattless.load(path, keep_parametrizations=True))
    stored = read_stored_sizes(path)
    rows = []
    for name, layer in layers.items():
        floor = entropy_floor(layer["codes"])
        parts = [key for key in stored if key.startswith(f"packed.{name}.") or key == f"{name}.bias"]
        given = {f"packed.{name}.weight.codes", f"packed.{name}.weight.codebook"}
        given |= {f"packed.{name}.bias.codes"} if "bias_codes" in layer else set()
        side = [key for key in parts if key not in given]  # counted at our bytes beside NNCodec's bitstream
        rows.append({"layer": name, "shape": list(layer["codes"].shape), "numel": int(layer["codes"].size),
                     "nonzeros": int(np.count_nonzero(layer["codes"])), "clusters": int(layer["codebook"].shape[-1]),
                     "floor_mask": floor["mask"], "floor_values": floor["values"], "floor": floor["total"],
                     "ours_codes": stored.get(f"packed.{name}.weight.codes", 0),
                     "ours_layer": sum(stored[key] for key in parts), "side": sum(stored[key] for key in side)})
    result: dict[str, Any] = {"file": str(path), "file_bytes": path.stat().st_size,
                              "tensor_bytes": sum(stored.values()), "layers": rows, "status": NOT_RUN}
    if not layers or not python.exists():
        result["status"] = "not run: no codebook-shared layers in the file" if not layers else NOT_RUN
        return result
    with tempfile.TemporaryDirectory(prefix="wattless-nnc-") as tmp:
        npz = Path(tmp) / "weights.npz"
        write_npz(layers, npz)
        found = run_worker(python, npz)
    if "error" in found:
        result["status"] = found["error"]
        return result
    for row in rows:
        coded = found["layers"][row["layer"]]
        row |= {"nnc_weights": coded["codebook"]["bytes"], "nnc_qp": coded["codebook"]["qp"],
                "nnc_max_error": coded["codebook"]["max_error"], "nnc_levels": coded["levels"],
                "nnc_layer": coded["codebook"]["bytes"] + coded.get("bias", 0) + row["side"]}
    result |= {"status": "ok", "nncodec_version": found["nncodec_version"], "nnc_joint": found["joint"]["bytes"],
               "nnc_joint_max_error": found["joint"]["max_error"],
               "nnc_side": result["tensor_bytes"] - sum(row["ours_layer"] - row["side"] for row in rows)}
    return result


def _kb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _sum(rows: list[dict[str, Any]], key: str) -> float | None:
    return None if any(row.get(key) is None for row in rows) else sum(row[key] for row in rows)


LEGEND = """Bytes of the same pruned + k-means-shared weights, per layer:

- **floor**: the entropy floor of the stored codes, no tables: where the K non-zero codes are,
  numel * H(K/numel) bits, plus the non-zero codes' order-0 entropy, K * H0 bits. Our coder's contexts
  can go below it.
- **ours codes**: our file's stream of the weight codes alone. **ours layer**: every tensor our file stores
  for the layer (codes, codebook, and the bias: its codes, scale and offset, or its floats).
- **NNCodec weights**: NNCodec's bitstream of the weight tensor in NNC codebook mode (DeepCABAC-coded
  indices, codebook and headers), at the coarsest QP whose decoded weights equal ours exactly (else see the
  max error). **NNCodec indices**: our codes as signed integers, lossless through DeepCABAC, without the
  codebook. **NNCodec layer**: NNCodec weights plus NNCodec's bitstream of the bias codes plus, at our
  bytes, what NNCodec is not given (the bias's float scale and offset, or a float bias). Each per-layer
  bitstream is standalone (one holding a single zero is 33 bytes, each further tensor in a bitstream adds
  about 16), so the total's single bitstream is less than the sum of the layers.
- **total**: sums; in the last columns our tensors (and whole file) vs one NNCodec bitstream of every layer
  plus our bytes of every tensor NNCodec is not given."""


def markdown(results: list[dict[str, Any]]) -> str:
    """One table per file, a row per layer and a total row (bytes), after :data:`LEGEND`."""
    lines = ["### Packed file vs NNCodec vs the entropy floor", "", LEGEND]
    for result in results:
        rows, status = result["layers"], result["status"]
        version = f"NNCodec {result['nncodec_version']}" if status == "ok" else f"NNCodec {status}"
        lines += ["", f"`{Path(result['file']).name}` ({version}):", "",
                  "| layer | shape | non-zero | floor | ours codes | NNCodec weights | NNCodec indices | ours layer "
                  "| NNCodec layer | NNCodec max error |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for row in rows:
            error = row.get("nnc_max_error")
            lines.append(f"| {row['layer']} | {'x'.join(map(str, row['shape']))} | {row['nonzeros']:,} "
                         f"| {_kb(row['floor'])} | {_kb(row['ours_codes'])} | {_kb(row.get('nnc_weights'))} "
                         f"| {_kb(row.get('nnc_levels'))} | {_kb(row['ours_layer'])} | {_kb(row.get('nnc_layer'))} "
                         f"| {'-' if error is None else f'{error:.1g}'} |")
        joint = result.get("nnc_joint")
        total = None if joint is None else joint + result["nnc_side"]
        floor, codes = _sum(rows, "floor"), _sum(rows, "ours_codes")
        lines.append(f"| **total** | | {sum(row['nonzeros'] for row in rows):,} | {_kb(floor)} | {_kb(codes)} "
                     f"| {_kb(_sum(rows, 'nnc_weights'))} | {_kb(_sum(rows, 'nnc_levels'))} "
                     f"| {_kb(result['tensor_bytes'])} (file {result['file_bytes']:,}) | {_kb(total)} | |")
        if rows and floor:
            verdict = f"Our code streams are {100 * (codes / floor - 1):+.1f}% from the floor"
            if total is not None:
                verdict += (f"; our tensors are {100 * (result['tensor_bytes'] / total - 1):+.1f}% and our whole "
                            f"file (header and metadata too) {100 * (result['file_bytes'] / total - 1):+.1f}% vs "
                            "NNCodec's")
            lines += ["", verdict + "."]
    return "\n".join(lines) + "\n"


def run(out_dir: Path, names: tuple[str, ...] = FILES) -> dict[str, Any]:
    """Compare each of ``names`` found in ``out_dir``; ``{"results": [...], "markdown": str}``."""
    results = [compare(out_dir / name) for name in names if (out_dir / name).exists()]
    return {"results": results, "markdown": markdown(results)}


if __name__ == "__main__":
    found = [compare(arg) for arg in sys.argv[1:]]
    print(markdown(found))
