"""The layers of an ``.onnx`` file as ZigZag takes them: each MAC node (fp32, static int8 QDQ, or the integer ops of
dynamic int8) rebuilt as a floating-point Conv, Gemm or MatMul of the same shapes and attributes, with the precisions
its graph stores. ZigZag's parser reads the float ops only, and reads shapes and precision attributes, not values:
the weights become zeros of their shape, which also lets the per-layer cache serve any file with the same layers.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .onnx_graph import _MAC_OPS, Graph
from .onnx_ops import _inferred_shapes_and_types, _load_onnx, count_onnx_macs
from .zigzag import DEFAULT_ACT_BITS, LayerJob

FLOAT_FORM = {"Conv": "Conv", "ConvInteger": "Conv", "QLinearConv": "Conv", "Gemm": "Gemm", "MatMul": "MatMul",
              "MatMulInteger": "MatMul", "QLinearMatMul": "MatMul"}
"""MAC op -> the floating-point op ZigZag parses for it (ConvTranspose has none)."""


def onnx_layers(path_or_model: Path | onnx.ModelProto) -> list[LayerJob]:
    """Every MAC node of the graph, named as the graph names it, with its stored weight bits and input activation
    bits (a product of two activations: both at the activations' bits)."""
    model = _load_onnx(path_or_model)
    shapes, _ = _inferred_shapes_and_types(model)
    graph = Graph(model, None)
    counted = {layer["name"]: layer for layer in count_onnx_macs(model)["layers"]}
    jobs = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in _MAC_OPS:
            continue
        name = node.name or f"{node.op_type}_{index}"
        act = counted[name]["act_bits"] or DEFAULT_ACT_BITS
        weight = counted[name]["weight_bits"] or act
        build = functools.partial(_float_node, node, graph, shapes) if node.op_type in FLOAT_FORM else None
        jobs.append(LayerJob(name, node.op_type, counted[name]["macs"], (weight, act), build,
                             counted[name]["weight_bits"] is not None))
    return jobs


def _float_node(node: onnx.NodeProto, graph: Graph, shapes: dict[str, list[int]], bits: dict[str, int]):
    """``node`` as a one-node float model: activations as inputs, stored operands (and the bias) as zero
    initializers of their shape, the op's own attributes and ZigZag's precision attributes."""
    operands, bias = _MAC_OPS[node.op_type]
    inputs, initializers, names = [], [], []
    for role, index in zip(("a", "b"), operands, strict=True):
        tensor = node.input[index]
        shape = shapes.get(tensor) or _stored_dims(graph, tensor)
        if graph.stored(tensor) is not None:
            initializers.append(numpy_helper.from_array(np.zeros(shape, dtype=np.float32), role))
        else:
            inputs.append(helper.make_tensor_value_info(role, TensorProto.FLOAT, shape))
        names.append(role)
    if bias is not None and len(node.input) > bias and node.input[bias]:
        initializers.append(numpy_helper.from_array(np.zeros(_stored_dims(graph, node.input[bias]),
                                                             dtype=np.float32), "bias"))
        names.append("bias")
    attributes = [attr for attr in node.attribute if attr.name not in bits]
    if FLOAT_FORM[node.op_type] == "Conv" and "kernel_shape" not in {attr.name for attr in attributes}:
        # optional in ONNX (the weight's shape says it), required by ZigZag's parser
        weight = node.input[operands[1]]
        kernel = (shapes.get(weight) or _stored_dims(graph, weight))[2:]
        attributes.append(helper.make_attribute("kernel_shape", kernel))
    copy = helper.make_node(FLOAT_FORM[node.op_type], names, ["y"], name=node.name or node.op_type)
    copy.attribute.extend(attributes)
    for key, value in bits.items():
        copy.attribute.append(helper.make_attribute(key, int(value)))
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, shapes[node.output[0]])
    return helper.make_model(helper.make_graph([copy], "layer", inputs, [output], initializers),
                             opset_imports=[helper.make_opsetid("", 17)])


def _stored_dims(graph: Graph, tensor: str) -> list[int]:
    found = graph.stored(tensor)
    return list(found[0].dims) if found is not None else []
