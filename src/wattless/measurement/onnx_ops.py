"""Multiply-accumulate (MAC) counts of an ONNX graph, per node, for one sample.

The counterpart of :func:`wattless.measurement.ops.count_macs` for exported models (fp32 and int8 QDQ),
with the same return layout, so both feed the same energy estimate.
"""

import math
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ..errors import ArtifactError

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


def count_onnx_macs(path_or_model: str | os.PathLike | onnx.ModelProto) -> dict:
    """MACs of an ONNX graph for one sample (batch 1), in total and per node.

    Counts MatMul, Gemm, Conv, ConvTranspose and their Integer and QLinear forms; in a QDQ int8 model
    the weights reach them through DequantizeLinear. Shapes come from onnx shape inference with the
    first (batch) dimension of every graph input fixed to 1.

    Returns:
        ``{"total": MACs, "layers": [{"name", "type", "macs", "params", "weight_numel", "in_elems",
        "out_elems"}]}`` as :func:`~wattless.measurement.ops.count_macs`, named by node (or op_index); a constant
        operand (initializer, possibly dequantized or transposed) is a weight, the others are inputs.

    Raises:
        ArtifactError: the file is missing or corrupt, its batch size is fixed to more than 1, or the
            shapes of a counted node cannot be inferred.
    """
    model = _load_onnx(path_or_model)
    shapes = _inferred_shapes(model)
    initializer_dims = {init.name: list(init.dims) for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}

    def constant_dims(name: str) -> list[int] | None:
        """Dims of the initializer that a tensor is a copy of, or None for a computed tensor."""
        if name in initializer_dims:
            return initializer_dims[name]
        producer = producers.get(name)
        if producer is not None and producer.op_type in _WEIGHT_PASSTHROUGH_OPS:
            return constant_dims(producer.input[0])
        return None

    def dims(name: str, node: onnx.NodeProto) -> list[int]:
        found = shapes[name] if name in shapes else constant_dims(name)
        if found is None:
            raise ArtifactError(f"cannot infer the shape of {name!r} at ONNX node {node.name!r}; "
                                "export the model with fixed shapes except the batch dimension")
        return found

    layers = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in _MAC_OPS:
            continue
        operand_indices, bias_index = _MAC_OPS[node.op_type]
        operands = [node.input[i] for i in operand_indices]
        operand_dims = [dims(name, node) for name in operands]
        operand_elems = [math.prod(d) for d in operand_dims]
        is_weight = [constant_dims(name) is not None for name in operands]
        weight_numel = sum(elems for elems, weight in zip(operand_elems, is_weight, strict=True) if weight)
        has_bias = bias_index is not None and len(node.input) > bias_index and node.input[bias_index]
        bias_dims = constant_dims(node.input[bias_index]) if has_bias else None
        out_elems = math.prod(dims(node.output[0], node))
        layers.append({
            "name": node.name or f"{node.op_type}_{index}",
            "type": node.op_type,
            "macs": _node_macs(node, operand_dims, out_elems),
            "params": weight_numel + (math.prod(bias_dims) if bias_dims is not None else 0),
            "weight_numel": weight_numel,
            "in_elems": sum(operand_elems) - weight_numel,
            "out_elems": out_elems,
        })
    return {"total": sum(layer["macs"] for layer in layers), "layers": layers}


def _node_macs(node: onnx.NodeProto, operand_dims: list[list[int]], out_elems: int) -> int:
    """MACs of one node from the dims of its two multiplied operands and its output size."""
    a_dims, b_dims = operand_dims
    if node.op_type == "ConvTranspose":
        # every input element is scattered through a (C_out / groups) x kernel window
        return math.prod(a_dims) * math.prod(b_dims[1:])
    if node.op_type in _CONV_OPS:
        # every output element is a dot product over (C_in / groups) x kernel
        return out_elems * math.prod(b_dims[1:])
    if node.op_type == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return out_elems * a_dims[0 if trans_a else 1]
    return out_elems * a_dims[-1]  # MatMul family: a dot product of length K per output element


def _load_onnx(path_or_model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """The graph of an ONNX model (weights stored outside the file are not needed, nor loaded)."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    path = Path(path_or_model)
    if not path.is_file():
        raise ArtifactError(f"ONNX file not found: {path}; check the path")
    try:
        model = onnx.load(path, load_external_data=False)
    except DecodeError as error:
        raise ArtifactError(f"not a valid ONNX file: {path} ({error}); export the model again") from None
    if not model.graph.node:
        raise ArtifactError(f"ONNX file has an empty graph: {path}; export the model again")
    return model


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Static shape of every tensor that onnx shape inference can resolve at batch size 1."""
    model_at_batch_1 = onnx.ModelProto()
    model_at_batch_1.CopyFrom(model)
    graph = model_at_batch_1.graph
    initializer_names = {init.name for init in graph.initializer}
    for value in graph.input:
        tensor_dims = value.type.tensor_type.shape.dim
        if value.name in initializer_names or not tensor_dims:
            continue
        batch_dim = tensor_dims[0]
        if batch_dim.HasField("dim_value") and batch_dim.dim_value != 1:
            raise ArtifactError(f"ONNX input {value.name!r} has a fixed batch size of {batch_dim.dim_value}; "
                                "export it with a dynamic batch axis or with batch size 1")
        batch_dim.dim_value = 1
    # stale symbolic shapes would be kept; let inference recompute them from the fixed inputs
    del graph.value_info[:]
    for value in graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model_at_batch_1, data_prop=True)
    except onnx.shape_inference.InferenceError as error:
        raise ArtifactError(f"ONNX shape inference failed ({error}); "
                            "check the model with onnx.checker.check_model") from None
    shapes = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            shapes[value.name] = [d.dim_value for d in tensor_type.shape.dim]
    return shapes
