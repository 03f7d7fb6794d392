"""Dynamic int8 quantization of an fp32 ONNX file with ONNX Runtime: int8 weights for MatMul and Gemm layers,
activation ranges measured on every input at run time (no calibration data).

This suits transformers and other matmul-heavy models, whose activation ranges vary from input to input
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html recommends dynamic quantization
for them and static quantization for CNNs). Weights are symmetric int8, one scale per output column by default;
activations are uint8, quantized on the fly (MatMulInteger / DynamicQuantizeMatMul kernels). Matmuls of two
activations (attention scores) and convolutions stay fp32.

ONNX Runtime's dynamic quantizer has no integer Gemm, so the fully connected layers the exporter writes as Gemm
(2-D inputs, e.g. an output layer) are first rewritten as MatMul + Add, which it quantizes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..errors import ConfigError
from ._io import atomic_output, graph_input, load_onnx_model, metadata_props, write_onnx_model
from .int8 import cpu_lacks_vnni
from .runtime import predict_or_bug

DYNAMIC_OPS = ("MatMul", "Gemm")
"""Operators whose constant weights dynamic quantization turns into int8."""
_INTEGER_OPS = {"MatMulInteger", "DynamicQuantizeMatMul"}
"""Operators of the quantized graph that multiply int8 weights."""


def quantize_dynamic_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    per_channel: bool = True,
    reduce_range: bool | None = None,
    op_types: Sequence[str] = DYNAMIC_OPS,
) -> Path:
    """Write a dynamically quantized int8 copy of an fp32 ONNX model.

    The fp32 file's ``metadata_props`` (the ``wattless`` record among them) are kept, with ``precision=int8``
    and the quantization settings added, as :func:`quantize_int8` does. The write is atomic and every
    intermediate file lives in a removed temp folder.

    Args:
        fp32_path: the fp32 .onnx file, e.g. from :func:`export_onnx`.
        out_path: the int8 .onnx file to write.
        per_channel: one weight scale per output column (better accuracy) instead of one per tensor.
        reduce_range: 7-bit weights, which avoid the 16-bit saturation of u8s8 kernels on x86-64 CPUs
            without VNNI; None chooses by this machine's CPU (:func:`cpu_lacks_vnni`).
        op_types: which of ``MatMul`` and ``Gemm`` to quantize.

    Raises:
        ConfigError: an operator type other than MatMul or Gemm, or a model with no such layer to quantize.
        ArtifactError: ``fp32_path`` is missing or not an ONNX model.

    Example:
        >>> quantize_dynamic_int8("ts_transformer.onnx", "ts_transformer.int8.onnx")  # doctest: +SKIP
        PosixPath('ts_transformer.int8.onnx')
    """
    op_types = list(dict.fromkeys(op_types))
    unknown = [op for op in op_types if op not in DYNAMIC_OPS]
    if unknown or not op_types:
        raise ConfigError(f"dynamic int8 quantizes {' and '.join(DYNAMIC_OPS)} layers; got op_types={op_types}; "
                          "use static int8 (quantize_int8) for convolutions")
    fp32_model = load_onnx_model(fp32_path)
    input_name, sample_shape = graph_input(fp32_model, fp32_path)
    if reduce_range is None:
        reduce_range = cpu_lacks_vnni()

    with tempfile.TemporaryDirectory(prefix="wattless-dynamic-") as work_dir:
        prepared_path, quantized_path = Path(work_dir, "prepared.onnx"), Path(work_dir, "int8.onnx")
        # Shape inference + constant folding first: the exporter may transpose a weight in the graph, and only
        # a folded (constant) weight is quantized.
        quant_pre_process(fp32_model, prepared_path)
        prepared = onnx.load(prepared_path)
        if "Gemm" in op_types:
            _gemm_to_matmul_add(prepared.graph)
        quantize_dynamic(
            prepared,
            quantized_path,
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
        )
        int8_model = onnx.load(quantized_path)

    quantized = sum(node.op_type in _INTEGER_OPS for node in int8_model.graph.node)
    if not quantized:
        raise ConfigError(f"{fp32_path} has no {' or '.join(op_types)} layer with constant weights, so dynamic int8 "
                          "would change nothing; use static int8 (quantize_int8) for convolutional models")
    settings = {
        "precision": "int8",
        "int8_mode": "dynamic",
        "int8_ops": ",".join(op_types),
        "int8_quantized_layers": str(quantized),
        "int8_per_channel": str(per_channel).lower(),
        "int8_reduce_range": str(reduce_range).lower(),
    }
    # Replace, not merge: drops the markers ORT's quantizer adds (onnx.infer, onnx.quant.pre_process).
    helper.set_model_props(int8_model, metadata_props(fp32_model) | settings)
    with atomic_output(out_path) as temp_path:
        write_onnx_model(int8_model, temp_path)
        _check_runs(temp_path, sample_shape)
    return Path(out_path)


def _gemm_to_matmul_add(graph: onnx.GraphProto) -> None:
    """Rewrite each ``Gemm(A, B, C)`` with a constant B (and alpha = beta = 1, A not transposed) as
    ``MatMul(A, B') + C`` in place, B' being B stored as (in, out); other Gemms are left alone."""
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rewritable = (node.op_type == "Gemm" and node.input[1] in initializers and attrs.get("transA", 0) == 0
                      and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0)
        if not rewritable:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        weight_name = f"{node.input[1]}_matmul"
        graph.initializer.append(numpy_helper.from_array(weight.T.copy() if attrs.get("transB", 0) else weight,
                                                         weight_name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], weight_name], [product], name=f"{node.name}_matmul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_add"))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)


def _check_runs(path: Path, sample_shape: tuple) -> None:
    """Run the quantized model once on a random batch; a crash or non-finite output is a bug, not a user error."""
    shape = tuple(d or 1 for d in sample_shape)
    batch = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    outputs = predict_or_bug(path, batch, "the dynamic int8 ONNX model")
    if not np.isfinite(outputs).all():
        raise RuntimeError("the dynamic int8 ONNX model produces NaN or infinite outputs; this is a wattless bug")
