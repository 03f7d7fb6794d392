"""Multiply-accumulate (MAC) counts of an ONNX graph, per node, for one sample, with the parameters the graph
stores: how many, how many are non-zero and at what precision, read from the graph's own tensors.

The counterpart of :func:`wattless.measurement.ops.count_macs` for exported models (fp32, static int8 QDQ and
dynamic int8), with the same return layout, so both feed the same energy estimate.
"""

import math
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ..errors import ArtifactError
from .onnx_graph import _BITS, _CONV_OPS, _DEFAULT_BITS, _MAC_OPS, Graph, parameter_counts, sum_or_none


def count_onnx_macs(path_or_model: str | os.PathLike | onnx.ModelProto) -> dict:
    """MACs of an ONNX graph for one sample (batch 1), in total and per node, and the parameters it stores.

    Counts MatMul, Gemm, Conv, ConvTranspose and their Integer and QLinear forms; in a QDQ int8 model
    the weights reach them through DequantizeLinear. Shapes come from onnx shape inference with the
    first (batch) dimension of every graph input fixed to 1.

    What counts as a parameter: every element of an initializer that a node reads as data, each initializer
    once however many nodes read it (looking through DequantizeLinear, Transpose, Reshape, Cast, Identity,
    Squeeze and Unsqueeze to the stored tensor), and only when it is

    - an operand or the bias of a counted MAC node (any type: fp32, or int8 read by MatMulInteger), or
    - a floating-point input of any other node, or a dequantized one (LayerNormalization scale and bias,
      BatchNormalization scale, bias and running statistics, the bias Add after a MatMul, a positional
      embedding, an embedding table), except a single value that is not a bias added to a MAC node's output
      (the attention scale, the 1 of ``x + 1``: constants of the computation) and floating-point inputs that
      configure an op (Resize scales, Clip bounds, Pad value).

    Not parameters: quantization scales and zero points (the inputs of QuantizeLinear, DequantizeLinear and
    the integer ops that hold them, and dynamic int8's weight scales multiplied with a DynamicQuantizeLinear
    scale), integer tensors that are not dequantized (shapes, axes, indices fed to Reshape, Slice, Gather...),
    initializers no node reads, and values held in Constant nodes. The count is of the values the file
    stores, so it can differ from the PyTorch model's: torch's exporter folds BatchNorm into the convolution
    before it and stores equal tensors once (the still-equal LayerNorms of an untrained model), while static
    int8 stores a copy of a shared bias per consumer (each LayerNorm its own int32 bias).

    Returns:
        A dict with

        - ``total``: MACs of one sample;
        - ``layers``: one row per MAC node, ``{"name", "type", "macs", "params", "weight_numel", "in_elems",
          "out_elems", "nonzero", "weight_bits", "act_bits"}``, named by node (or op_index): ``params``,
          ``weight_numel``, ``in_elems`` and ``out_elems`` as :func:`~wattless.measurement.ops.count_macs`
          (a constant operand, possibly dequantized or transposed, is a weight, the others are inputs; the
          bias of a MatMul is its own Add node, in ``other_layers``); ``nonzero`` the weight values that
          are not zero (for integer weights: that differ from their zero point, i.e. dequantize to non-zero);
          ``weight_bits`` the bits of a stored weight element (8 for int8 weights, QDQ or integer op; 32 for
          fp32; 16 for fp16), None without a constant operand (attention's matmul of two activations), as is
          ``nonzero``; ``act_bits`` the bits of the input activations: those of the integer type where the
          input is quantized (a DequantizeLinear of a computed integer tensor, as QDQ's
          QuantizeLinear -> DequantizeLinear, or an integer op's input, as DynamicQuantizeLinear's uint8),
          else those of the input's type (32 for fp32);
        - ``other_layers``: nodes other than MAC nodes that read parameters, ``{"name", "type", "params",
          "nonzero", "weight_bits"}`` (LayerNormalization, a bias Add...), ``weight_bits`` the widest of
          their stored elements;
        - ``params`` and ``nonzero_params``: the parameter values of the whole graph (see above), and those
          that are not zero (quantized values: that differ from their zero point);
        - ``weight_bits``: ``{layer name: bits}`` for the rows of ``layers`` that have weights;
        - ``params_by_precision``: ``{"fp32" | "int8" | "int32" | ...: {"bits", "params", "nonzero"}}`` by
          stored element type.

        A non-zero count is None where the values cannot be read (weights in an external file that is
        missing, or not given: a ModelProto loaded without its external data).

    Raises:
        ArtifactError: the file is missing or corrupt, its batch size is fixed to more than 1, or the
            shapes of a counted node cannot be inferred.
    """
    model = _load_onnx(path_or_model)
    base_dir = None if isinstance(path_or_model, onnx.ModelProto) else str(Path(path_or_model).parent)
    shapes, types = _inferred_shapes_and_types(model)
    graph = Graph(model, base_dir)

    def constant_dims(name: str) -> list[int] | None:
        """Dims of the initializer that a tensor is a copy of, or None for a computed tensor."""
        found = graph.stored(name)
        return list(found[0].dims) if found is not None else None

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
        weights = [graph.source(node, i) for i, weight in zip(operand_indices, is_weight, strict=True) if weight]
        activations = [node.input[i] for i, weight in zip(operand_indices, is_weight, strict=True) if not weight]
        layers.append({
            "name": node.name or f"{node.op_type}_{index}",
            "type": node.op_type,
            "macs": _node_macs(node, operand_dims, out_elems),
            "params": weight_numel + (math.prod(bias_dims) if bias_dims is not None else 0),
            "weight_numel": weight_numel,
            "in_elems": sum(operand_elems) - weight_numel,
            "out_elems": out_elems,
            "nonzero": sum_or_none(graph.nonzero(source) for source in weights) if weights else None,
            "weight_bits": max(_BITS.get(s.tensor.data_type, _DEFAULT_BITS) for s in weights) if weights else None,
            "act_bits": max((graph.activation_bits(name, node, types) for name in activations),
                            default=_DEFAULT_BITS),
        })
    return {"total": sum(layer["macs"] for layer in layers), "layers": layers,
            **parameter_counts(model, graph, layers)}


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
    """The graph of an ONNX model; weights stored outside the file are not loaded here (:class:`_Graph`
    reads them one tensor at a time, to count non-zeros)."""
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


def _inferred_shapes_and_types(model: onnx.ModelProto) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Static shape of every tensor that onnx shape inference can resolve at batch size 1, and the element
    type (``TensorProto`` data type) of every tensor whose type it knows."""
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
    types = {tensor.name: tensor.data_type for tensor in inferred.graph.initializer}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type:
            types[value.name] = tensor_type.elem_type
        if tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim):
            shapes[value.name] = [d.dim_value for d in tensor_type.shape.dim]
    return shapes, types
