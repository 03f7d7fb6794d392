"""Encode weights with NNCodec (MPEG NNC, ISO/IEC 15938-17): run by the NNCodec environment's python, not wattless's.

Usage: ``python -I _nncodec_worker.py IN.npz`` (``-I`` keeps this folder, whose ``nncodec.py`` would shadow the
package, off ``sys.path``). ``IN.npz`` holds, per layer ``L``: ``w/L`` the dense float32 weights
(``codebook[codes]``), ``q/L`` the same codes as signed int32 levels (codebook entries ranked by value, the
first non-negative one at 0), and optionally ``b/L`` the bias's integer codes (int32). Prints one JSON object:

- per layer, ``codebook``: the weights in NNC codebook mode (``codebook_mode=1``: NNCodec derives the sorted
  codebook and codes the indices with DeepCABAC), at the coarsest quantization parameter (QP) whose decoded
  weights equal the input exactly (else the finest QP tried, with its maximum absolute error); ``levels``: the
  int32 levels, coded losslessly (NNCodec passes integer tensors straight to DeepCABAC), codebook not included;
  ``bias``: the bias codes, likewise. Each is its own bitstream (headers included), bytes.
- ``joint``: one bitstream holding every layer's weights (codebook mode, each at its chosen QP) and biases.

Every bitstream is decoded again and checked. Only numpy and NNCodec's compiled DeepCABAC are needed: the
``nncodec.framework`` package (PyTorch/TensorFlow model loading, which imports torch and torchvision) is
replaced by an empty stub before ``nncodec.nnc`` is imported, since ``nnc.compress`` of a dict of arrays
never uses it.
"""

import contextlib
import io
import json
import sys
import types

import numpy as np

QPS = range(-64, -132, -4)
"""Quantization parameters tried, coarse to fine (step about 2**(qp/4) at qp_density 2): -64 is never exact
for float32 weights of magnitude 0.01 to 1, near -100 is, and below about -128 the levels overflow int32."""


def _stub_framework():
    framework = types.ModuleType("nncodec.framework")
    for name in ("tensorflow_model", "pytorch_model", "use_case_init"):
        sub = types.ModuleType(f"nncodec.framework.{name}")
        setattr(framework, name, sub)
        sys.modules[f"nncodec.framework.{name}"] = sub
    sys.modules["nncodec.framework"] = framework


_stub_framework()
from nncodec import nnc  # noqa: E402


def _compress(params, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):  # NNCodec prints INFO lines
        stream = nnc.compress(params, bitstream_path=None, return_bitstream=True, verbose=False, use_dq=False,
                              param_opt=True, **kwargs)
        decoded = nnc.decompress(bytearray(stream))
    return bytes(stream), decoded


def _max_error(decoded, original):
    return float(np.max(np.abs(decoded.astype(np.float64) - original.astype(np.float64)), initial=0.0))


def _codebook(name, weights):
    """Codebook mode at the coarsest exact QP (else the most accurate one), the smaller of with and without row
    skipping: ``{"bytes", "qp", "max_error", "row_skipping"}``."""
    best = None
    for qp in QPS:
        stream, decoded = _compress({name: weights}, codebook_mode=1, qp=qp, row_skipping=False)
        error = _max_error(decoded[name].astype(np.float32), weights)
        if best is None or error < best["max_error"]:
            best = {"bytes": len(stream), "qp": qp, "max_error": error, "row_skipping": False}
        if error == 0:
            break
    stream, decoded = _compress({name: weights}, codebook_mode=1, qp=best["qp"], row_skipping=True)
    error = _max_error(decoded[name].astype(np.float32), weights)
    if error <= best["max_error"] and len(stream) < best["bytes"]:
        best |= {"bytes": len(stream), "max_error": error, "row_skipping": True}
    return best


def _lossless(name, levels):
    sizes = []
    for rows in (False, True):
        stream, decoded = _compress({name: levels}, row_skipping=rows)
        if not np.array_equal(decoded[name], levels):
            raise SystemExit(f"NNCodec did not decode the integer tensor {name} back exactly")
        sizes.append(len(stream))
    return min(sizes)


def main(path):
    data = np.load(path, allow_pickle=False)
    layers = sorted({key.split("/", 1)[1] for key in data.files if key.startswith("w/")})
    out = {"layers": {}}
    params, qps = {}, {}
    for layer in layers:
        weights, levels = data[f"w/{layer}"].astype(np.float32), data[f"q/{layer}"].astype(np.int32)
        entry = {"codebook": _codebook(layer, weights), "levels": _lossless(layer, levels)}
        params[layer], qps[layer] = weights, entry["codebook"]["qp"]
        if f"b/{layer}" in data.files:
            bias = data[f"b/{layer}"].astype(np.int32)
            entry["bias"] = _lossless(f"{layer}.bias", bias)
            params[f"{layer}.bias"] = bias
        out["layers"][layer] = entry
    rows = all(entry["codebook"]["row_skipping"] for entry in out["layers"].values())
    stream, decoded = _compress(params, codebook_mode=1, qp=QPS[0], qp_per_tensor=qps, row_skipping=rows)
    errors = [_max_error(decoded[name].astype(np.float32), value) for name, value in params.items()]
    out["joint"] = {"bytes": len(stream), "max_error": max(errors, default=0.0)}
    import nncodec  # noqa: PLC0415
    out["nncodec_version"] = getattr(nncodec, "__version__", None) or _version()
    print(json.dumps(out))


def _version():
    from importlib.metadata import version  # noqa: PLC0415
    return version("nncodec")


if __name__ == "__main__":
    main(sys.argv[1])
