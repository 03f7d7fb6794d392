"""Reading an ONNX graph's stored tensors: which initializer a node's operand is (through dequantization and layout
ops), its precision, how many of its values are non-zero, and which of them count as parameters.

Used by :func:`~wattless.measurement.onnx_ops.count_onnx_macs`; see its docstring for what counts as a parameter.
"""

import math
from typing import NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# op type -> (input indices of the two multiplied operands, input index of the bias or None)
_MAC_OPS = {
    "MatMul": ((0, 1), None),
    "MatMulInteger": ((0, 1), None),
    "QLinearMatMul": ((0, 3), None),
    "Gemm": ((0, 1), 2),
    "Conv": ((0, 1), 2),
    "ConvInteger": ((0, 1), None),
    "QLinearConv": ((0, 3), 8),
    "ConvTranspose": ((0, 1), 2),
}
_CONV_OPS = {"Conv", "ConvInteger", "QLinearConv"}
# Ops that may sit between a weight initializer and its consumer while the weight stays a constant.
_WEIGHT_PASSTHROUGH_OPS = {
    "DequantizeLinear", "Transpose", "Reshape", "Cast", "Identity", "Squeeze", "Unsqueeze",
}
# Ops that move an activation's values around without computing on them or changing their type.
_LAYOUT_OPS = {"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"}
# MAC ops on integer tensors: operand input index -> (input index of its zero point, axis of a 1-D zero point:
# per row of A, per column of B, per output channel of W).
_INTEGER_OPS = {
    "MatMulInteger": {0: (2, -2), 1: (3, -1)},
    "ConvInteger": {0: (2, 0), 1: (3, 0)},
    "QLinearMatMul": {0: (2, -2), 3: (5, -1)},
    "QLinearConv": {0: (2, 0), 3: (5, 0)},
}
# Inputs that hold quantization scales and zero points: metadata of the quantization, not parameters.
_QUANTIZATION_INPUTS = {
    "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2},
    "MatMulInteger": {2, 3},
    "ConvInteger": {2, 3},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "QLinearConv": {1, 2, 4, 5, 6, 7},
}
# Floating-point inputs that configure an op (sizes, bounds, padding value) rather than hold learned values.
_SETTING_INPUTS = {"Resize": {1, 2}, "Upsample": {1}, "Clip": {1, 2}, "Pad": {2}}
# Ops between a MAC op's output and the Add of its bias: dynamic int8 rescales the integer product (Cast, Mul),
# static int8 quantizes it (QuantizeLinear, DequantizeLinear).
_BIAS_PATH_OPS = {"Cast", "Mul", "Identity", "QuantizeLinear", "DequantizeLinear"}
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
_FLOAT_LABELS = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16",
                 TensorProto.DOUBLE: "fp64"}
_BITS = {
    TensorProto.FLOAT: 32, TensorProto.DOUBLE: 64, TensorProto.FLOAT16: 16, TensorProto.BFLOAT16: 16,
    TensorProto.INT8: 8, TensorProto.UINT8: 8, TensorProto.INT16: 16, TensorProto.UINT16: 16,
    TensorProto.INT32: 32, TensorProto.UINT32: 32, TensorProto.INT64: 64, TensorProto.UINT64: 64,
    TensorProto.BOOL: 8,
}
# element types of newer opsets, where this onnx version has them
_BITS.update({getattr(TensorProto, name): bits for name, bits in (
    ("FLOAT8E4M3FN", 8), ("FLOAT8E4M3FNUZ", 8), ("FLOAT8E5M2", 8), ("FLOAT8E5M2FNUZ", 8), ("FLOAT8E8M0", 8),
    ("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2),
) if hasattr(TensorProto, name)})
_DEFAULT_BITS = 32


class _Source(NamedTuple):
    """A constant input of a node: the initializer it is a copy of, and how to read the stored values."""

    tensor: TensorProto
    quantized: bool  # stored integers standing for real values: dequantized, or read by an integer op
    zero_point: str | None  # the tensor holding their zero point (None: zero)
    axis: int  # the axis a 1-D zero point runs along
    block_size: int  # blocked quantization: stored values per zero point along ``axis`` (0: per axis or tensor)
    same_layout: bool  # no op between the initializer and the zero point reorders or reshapes the values


class Graph:
    """Lookups on a graph's initializers and producers, and the stored values of its initializers."""

    def __init__(self, model: onnx.ModelProto, base_dir: str | None):
        self.initializers = {tensor.name: tensor for tensor in model.graph.initializer}
        self.producers = {output: node for node in model.graph.node for output in node.output}
        self.base_dir = base_dir
        self._nonzero: dict[tuple, int | None] = {}

    def stored(self, name: str) -> tuple[TensorProto, list[onnx.NodeProto]] | None:
        """The initializer a tensor is a copy of and the ops in between (consumer side first), or None for a
        computed tensor."""
        between = []
        while name not in self.initializers:
            producer = self.producers.get(name)
            if producer is None or producer.op_type not in _WEIGHT_PASSTHROUGH_OPS:
                return None
            between.append(producer)
            name = producer.input[0]
        return self.initializers[name], between

    def source(self, node: onnx.NodeProto, index: int) -> _Source | None:
        """Where input ``index`` of ``node`` is stored, or None where it is computed."""
        found = self.stored(node.input[index])
        if found is None:
            return None
        tensor, between = found
        dequantizers = [i for i, op in enumerate(between) if op.op_type == "DequantizeLinear"]
        if dequantizers:  # the one next to the stored tensor interprets it
            position = dequantizers[-1]
            dequantize = between[position]
            attributes = {attr.name: onnx.helper.get_attribute_value(attr) for attr in dequantize.attribute}
            return _Source(tensor, True, _optional_input(dequantize, 2), attributes.get("axis", 1),
                           attributes.get("block_size", 0), position == len(between) - 1)
        if index in _INTEGER_OPS.get(node.op_type, {}):
            zero_point_index, axis = _INTEGER_OPS[node.op_type][index]
            return _Source(tensor, True, _optional_input(node, zero_point_index), axis, 0, not between)
        return _Source(tensor, False, None, 0, 0, True)

    def values(self, tensor: TensorProto) -> np.ndarray | None:
        """The tensor's stored values, or None where they live in an external file that cannot be read."""
        if tensor.data_location == TensorProto.EXTERNAL and self.base_dir is None:
            return None
        try:
            return numpy_helper.to_array(tensor, self.base_dir or "")
        except (OSError, ValueError, TypeError, onnx.checker.ValidationError):
            return None  # a missing or truncated external data file, or one outside the model's folder

    def nonzero(self, source: _Source) -> int | None:
        """Stored values of ``source`` that stand for a non-zero number; None where they cannot be read."""
        key = (source.tensor.name, source.quantized, source.zero_point, source.axis, source.block_size)
        if key not in self._nonzero:
            self._nonzero[key] = self._count_nonzero(source)
        return self._nonzero[key]

    def _count_nonzero(self, source: _Source) -> int | None:
        values = self.values(source.tensor)
        if values is None:
            return None
        if not source.quantized or source.zero_point is None:
            return int(np.count_nonzero(values))
        zero_point_tensor = self.initializers.get(source.zero_point)
        zero_point = self.values(zero_point_tensor) if zero_point_tensor is not None else None
        if zero_point is None or (zero_point.size > 1 and not source.same_layout):
            return None
        return _nonzero_quantized(values, zero_point, source.axis, source.block_size)

    def activation_bits(self, name: str, node: onnx.NodeProto, types: dict[str, int]) -> int:
        """Bits of an activation input of a MAC node: of its integer type where it is quantized, else of its
        own (floating-point) type."""
        if node.op_type in _INTEGER_OPS:
            return _BITS.get(types.get(name), 8)
        upstream = name
        while (producer := self.producers.get(upstream)) is not None and producer.op_type in _LAYOUT_OPS:
            upstream = producer.input[0]
        if producer is not None and producer.op_type == "DequantizeLinear":
            quantized_type = types.get(producer.input[0]) or types.get(_optional_input(producer, 2) or "")
            return _BITS.get(quantized_type, 8)  # without a zero point, QuantizeLinear writes uint8
        return _BITS.get(types.get(name), _DEFAULT_BITS)

    def parameter(self, node: onnx.NodeProto, index: int) -> _Source | None:
        """The stored parameter that input ``index`` of ``node`` reads, or None (see :func:`count_onnx_macs`)."""
        if not node.input[index] or node.op_type in _WEIGHT_PASSTHROUGH_OPS:
            return None  # their consumers read the value; their other inputs are shapes, axes, quantization
        if index in _QUANTIZATION_INPUTS.get(node.op_type, ()):
            return None
        source = self.source(node, index)
        if source is None or node.op_type in _MAC_OPS:
            return source
        if not source.quantized and (source.tensor.data_type not in _FLOAT_TYPES
                                     or index in _SETTING_INPUTS.get(node.op_type, ())):
            return None
        if math.prod(source.tensor.dims) == 1 and not (node.op_type == "Add" and self._adds_to_mac_output(node)):
            return None
        if node.op_type == "Mul" and self._multiplies_dynamic_scale(node):
            return None
        return source

    def _adds_to_mac_output(self, node: onnx.NodeProto) -> bool:
        """An Add of a MAC node's output (possibly rescaled or quantized on the way): a bias Add."""
        for name in node.input:
            for _ in range(4):
                producer = self.producers.get(name)
                if producer is None:
                    break
                if producer.op_type in _MAC_OPS:
                    return True
                if producer.op_type not in _BIAS_PATH_OPS:
                    break
                name = producer.input[0]
        return False

    def _multiplies_dynamic_scale(self, node: onnx.NodeProto) -> bool:
        """A Mul by the scale DynamicQuantizeLinear computes: dynamic int8 combines it with the weight scale."""
        for name in node.input:
            producer = self.producers.get(name)
            if producer is not None and producer.op_type == "DynamicQuantizeLinear" and name == producer.output[1]:
                return True
        return False


def parameter_counts(model: onnx.ModelProto, graph: Graph, layers: list[dict]) -> dict:
    """The graph-wide parameter keys of :func:`count_onnx_macs`' result."""
    parameters: dict[str, _Source] = {}
    other_layers = []
    for index, node in enumerate(model.graph.node):
        read = {}
        for i in range(len(node.input)):
            source = graph.parameter(node, i)
            if source is not None:
                read.setdefault(source.tensor.name, source)
                parameters.setdefault(source.tensor.name, source)
        if read and node.op_type not in _MAC_OPS:
            other_layers.append({
                "name": node.name or f"{node.op_type}_{index}",
                "type": node.op_type,
                "params": sum(math.prod(s.tensor.dims) for s in read.values()),
                "nonzero": sum_or_none(graph.nonzero(s) for s in read.values()),
                "weight_bits": max(_BITS.get(s.tensor.data_type, _DEFAULT_BITS) for s in read.values()),
            })
    by_precision: dict[str, dict] = {}
    for source in parameters.values():
        data_type = source.tensor.data_type
        label = _FLOAT_LABELS.get(data_type) or TensorProto.DataType.Name(data_type).lower()
        entry = by_precision.setdefault(label, {"bits": _BITS.get(data_type), "params": 0, "nonzero": 0})
        entry["params"] += math.prod(source.tensor.dims)
        entry["nonzero"] = sum_or_none([entry["nonzero"], graph.nonzero(source)])
    return {
        "other_layers": other_layers,
        "params": sum(math.prod(source.tensor.dims) for source in parameters.values()),
        "nonzero_params": sum_or_none(graph.nonzero(source) for source in parameters.values()),
        "weight_bits": {layer["name"]: layer["weight_bits"] for layer in layers if layer["weight_bits"] is not None},
        "params_by_precision": by_precision,
    }


def _nonzero_quantized(values: np.ndarray, zero_point: np.ndarray, axis: int, block_size: int) -> int | None:
    """Quantized values that differ from their zero point (scalar, per ``axis`` or per block along it);
    None where the zero point's shape does not fit."""
    values, zero_point = values.astype(np.int64), zero_point.astype(np.int64)
    if zero_point.size > 1:
        if values.ndim == 0 or not -values.ndim <= axis < values.ndim:
            return None
        axis %= values.ndim
        if block_size > 0:
            if zero_point.ndim != values.ndim:
                return None
            zero_point = np.repeat(zero_point, block_size, axis=axis)
            zero_point = np.take(zero_point, np.arange(min(values.shape[axis], zero_point.shape[axis])), axis=axis)
        elif zero_point.ndim == 1:
            shape = [1] * values.ndim
            shape[axis] = zero_point.size
            zero_point = zero_point.reshape(shape)
    else:
        zero_point = zero_point.reshape(())
    try:
        return int(np.count_nonzero(values != zero_point))
    except ValueError:  # shapes that do not broadcast
        return None


def _optional_input(node: onnx.NodeProto, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def sum_or_none(counts) -> int | None:
    """The sum, or None if any count is unknown."""
    total = 0
    for count in counts:
        if count is None:
            return None
        total += count
    return total
