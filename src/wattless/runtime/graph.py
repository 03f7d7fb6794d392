"""Lowering a PyTorch model to the native runtime's graph: a list of per-sample operations on float buffers.

The model is traced with ``torch.fx`` (layers as leaves, so a layer's packed weight is found by its name) and its
shapes propagated with one sample; every node becomes one :class:`Op` of :data:`OPS` on values of known shape (the
batch dimension left out: the C code runs one sample at a time). Blocks ``fx`` cannot trace (the zoo transformer's
encoder block) have a lowering of their own (:func:`register_lowering`). A node of any other kind is refused with
one error naming the layer, its op and the supported list.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from ..errors import ModelError

OPS = ("linear", "conv", "batchnorm", "layernorm", "act", "maxpool", "avgpool", "mean", "add", "add_const",
       "scale_shift", "concat", "slice", "permute", "pad", "softmax", "attention", "fake_quant")
"""The operations the C kernels implement."""
ACTIVATIONS = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
               F.relu6: "relu6",
               F.relu: "relu", torch.relu: "relu", F.gelu: "gelu", torch.tanh: "tanh", torch.sigmoid: "sigmoid",
               F.sigmoid: "sigmoid", F.tanh: "tanh"}
SUPPORTED = ("Linear", "Conv1d", "Conv2d (incl. grouped and depthwise)", "BatchNorm1d/2d", "LayerNorm", "ReLU", "ReLU6",
             "GELU", "Tanh", "Sigmoid", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d(1)", "Flatten", "Dropout",
             "Identity", "Softmax", "residual add", "concat", "split/chunk", "reshape/flatten/view",
             "transpose/permute", "pad", "mean", "the zoo transformer's encoder block", "activation quantizers")
_VIEWS = {"flatten", "reshape", "view", "unflatten", "contiguous", "squeeze", "unsqueeze"}
_LEAVES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm,
                                        nn.ReLU, nn.ReLU6, nn.GELU, nn.Tanh, nn.Sigmoid, nn.MaxPool2d, nn.AvgPool2d,
                                        nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity, nn.Softmax)


@dataclass
class Op:
    """One per-sample operation: ``kind`` of :data:`OPS` reading ``inputs`` (value names), writing ``output``."""

    kind: str
    name: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    module: nn.Module | None = None
    """The layer whose weights the op uses (its name is ``name``)."""


@dataclass
class Graph:
    """Values (name -> per-sample shape; views share their source's storage) and operations in order."""

    input: str
    output: str
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)

    def storage(self, value: str) -> str:
        """The value whose buffer holds ``value`` (itself, or what it is a view of)."""
        while value in self.views:
            value = self.views[value]
        return value

    def add(self, kind: str, name: str, inputs: list[str], shape: tuple[int, ...], module: nn.Module | None = None,
            **attrs: Any) -> str:
        """Append an op writing a new value of ``shape``; returns the value's name."""
        output = f"v{len(self.shapes)}"
        self.shapes[output] = tuple(int(d) for d in shape)
        self.ops.append(Op(kind, name, inputs, output, attrs, module))
        return output

    def view(self, source: str, shape: tuple[int, ...]) -> str:
        output = f"v{len(self.shapes)}"
        self.shapes[output] = tuple(int(d) for d in shape)
        self.views[output] = source
        return output


Lowering = Callable[[Graph, str, nn.Module, str], str]
"""``lower(graph, input value, module, module name) -> output value`` for a block fx cannot trace."""
_LOWERINGS: dict[type[nn.Module], Lowering] = {}


def register_lowering(module_type: type[nn.Module]) -> Callable[[Lowering], Lowering]:
    """Lower every ``module_type`` block with the decorated function instead of tracing into it."""

    def decorate(lowering: Lowering) -> Lowering:
        _LOWERINGS[module_type] = lowering
        return lowering

    return decorate


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return isinstance(module, _LEAVES) or type(module) in _LOWERINGS or super().is_leaf_module(module, qualname)


def _refuse(name: str, what: str) -> ModelError:
    return ModelError(f"the native C export cannot run layer {name!r} ({what}); it supports: {', '.join(SUPPORTED)}")


def lower(module: nn.Module, input_shape: tuple[int, ...]) -> Graph:
    """The graph of ``module`` (dense weights, eval mode) for samples of ``input_shape`` (import
    :mod:`.lowerings` first for the zoo's own blocks: :mod:`.export` does)."""
    module = module.eval()
    try:
        traced = torch.fx.GraphModule(module, _Tracer().trace(module))
    except Exception as error:  # fx raises many kinds on code it cannot trace
        raise ModelError(f"the native C export cannot trace this model ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:200]}); it supports: {', '.join(SUPPORTED)}") from None
    ShapeProp(traced).propagate(torch.zeros(1, *input_shape))
    graph = Graph(input="input", output="")
    graph.shapes["input"] = tuple(input_shape)
    env: dict[str, Any] = {}
    modules = dict(traced.named_modules())
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            env[node.name] = "input"
        elif node.op == "output":
            graph.output = _value(env, node.args[0], node.name)
        elif node.op == "get_attr":
            env[node.name] = _constant(traced, node.target)
        else:
            env[node.name] = _lower_node(graph, node, env, modules)
    return graph


def _value(env: dict[str, Any], arg: Any, name: str) -> str:
    value = env.get(arg.name) if isinstance(arg, torch.fx.Node) else None
    if not isinstance(value, str):
        raise _refuse(name, "an output that is not one tensor")
    return value


def _constant(traced: torch.fx.GraphModule, target: str) -> torch.Tensor:
    value = traced
    for part in target.split("."):
        value = getattr(value, part)
    return value.detach()


def _looked_up(env: dict[str, Any], arg: Any) -> Any:
    """``arg`` with every fx node in it (also inside a list, as torch.cat takes) replaced by its lowered value."""
    if isinstance(arg, list | tuple):
        return type(arg)(_looked_up(env, item) for item in arg)
    return env.get(arg.name, arg) if isinstance(arg, torch.fx.Node) else arg


def _shape(node: torch.fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(int(d) for d in meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else None


def _lower_node(graph: Graph, node: torch.fx.Node, env: dict[str, Any], modules: dict[str, nn.Module]) -> Any:
    shape = _shape(node)
    args = [_looked_up(env, a) for a in node.args]
    if node.op == "call_module":
        module = modules[node.target]
        return _lower_module(graph, module, str(node.target), _as_value(args[0], node), shape)
    target = node.target
    if target in (torch.split, "split", torch.chunk, "chunk"):
        return _split(graph, node, _as_value(args[0], node))
    if target is operator.getitem and isinstance(args[0], _Parts):
        parts = args[0]
        return graph.add("slice", node.name, [parts.source], parts.shapes[args[1]], dim=parts.dim,
                         start=parts.starts[args[1]])
    if shape is None:  # x.size(0) and such: used only as arguments of views, which take shapes from the trace
        return None
    name = node.name
    if target in ACTIVATIONS or target in ("relu", "sigmoid", "tanh"):
        kind = ACTIVATIONS.get(target, target)
        return graph.add("act", name, [_as_value(args[0], node)], shape, fn=kind)
    if target in (operator.add, torch.add, "add", operator.mul, torch.mul, "mul", operator.truediv, "div"):
        return _lower_arithmetic(graph, node, args, shape)
    if target in _VIEWS or target in (torch.flatten, torch.reshape):
        source = _as_value(args[0], node)
        _check_batch_kept(node, shape, graph.shapes[source])
        return graph.view(source, shape)
    if target in ("transpose", "permute", torch.transpose, torch.permute):
        return _lower_permute(graph, node, args, shape)
    if target is F.pad:
        pads = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
        mode = node.kwargs.get("mode", "constant")
        if mode != "constant":
            raise _refuse(name, f"padding mode {mode!r}")
        return graph.add("pad", name, [_as_value(args[0], node)], shape, pads=list(pads),
                         value=float(node.kwargs.get("value", 0.0) or 0.0))
    if target in ("mean", torch.mean):
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        source = _as_value(args[0], node)
        rank = len(graph.shapes[source]) + 1
        dims = sorted(d % rank for d in dims)
        if not dims or 0 in dims:
            raise _refuse(name, "a mean over the batch")
        return graph.add("mean", name, [source], shape, dims=[d - 1 for d in dims])
    if target in (torch.cat, torch.concat):
        values = [_as_value(v, node) for v in args[0]]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        rank = len(shape) + 1
        if dim % rank == 0:
            raise _refuse(name, "a concat along the batch")
        return graph.add("concat", name, values, shape, dim=dim % rank - 1)
    if target in (F.softmax, torch.softmax, "softmax"):
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        return _softmax(graph, name, _as_value(args[0], node), shape, dim)
    raise _refuse(name, f"function {getattr(target, '__name__', target)}")


@dataclass
class _Parts:
    """The pieces of a split (or chunk) of ``source`` along sample dimension ``dim``: where each starts, its shape."""

    source: str
    dim: int
    starts: list[int]
    shapes: list[tuple[int, ...]]


def _split(graph: Graph, node: torch.fx.Node, source: str) -> _Parts:
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    rank = len(graph.shapes[source]) + 1
    if dim % rank == 0:
        raise _refuse(node.name, "a split along the batch")
    shapes = [tuple(int(d) for d in meta.shape[1:]) for meta in node.meta["tensor_meta"]]
    starts = [sum(shape[dim % rank - 1] for shape in shapes[:i]) for i in range(len(shapes))]
    return _Parts(source, dim % rank - 1, starts, shapes)


def _as_value(arg: Any, node: torch.fx.Node) -> str:
    if not isinstance(arg, str):
        raise _refuse(node.name, "an input that is not a tensor of the model")
    return arg


def _check_batch_kept(node: torch.fx.Node, shape: tuple[int, ...], source: tuple[int, ...]) -> None:
    if math.prod(shape) != math.prod(source):
        raise _refuse(node.name, f"a reshape that moves the batch dimension ({list(source)} -> {list(shape)})")


def _softmax(graph: Graph, name: str, source: str, shape: tuple[int, ...], dim: int | None) -> str:
    rank = len(shape) + 1
    if dim is None or dim % rank != rank - 1:
        raise _refuse(name, "a softmax over a dimension other than the last")
    return graph.add("softmax", name, [source], shape)


def _lower_permute(graph: Graph, node: torch.fx.Node, args: list[Any], shape: tuple[int, ...]) -> str:
    source = _as_value(args[0], node)
    rank = len(graph.shapes[source]) + 1
    if node.target in ("transpose", torch.transpose):
        a, b = (d % rank for d in args[1:3])
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    else:
        order = [d % rank for d in (args[1:] if not isinstance(args[1], list | tuple) else args[1])]
    if order[0] != 0:
        raise _refuse(node.name, "a transpose of the batch dimension")
    order = [d - 1 for d in order[1:]]
    if order == sorted(order):
        return graph.view(source, shape)
    return graph.add("permute", node.name, [source], shape, order=order)


def _lower_arithmetic(graph: Graph, node: torch.fx.Node, args: list[Any], shape: tuple[int, ...]) -> str:
    a, b = args[0], args[1]
    multiply = node.target in (operator.mul, torch.mul, "mul")
    divide = node.target in (operator.truediv, "div")
    if isinstance(a, str) and isinstance(b, str):
        if multiply or divide or graph.shapes[a] != graph.shapes[b]:
            raise _refuse(node.name, "an elementwise product or a broadcast sum of two activations")
        return graph.add("add", node.name, [a, b], shape)
    value, other = (a, b) if isinstance(a, str) else (b, a)
    if not isinstance(value, str):
        raise _refuse(node.name, "arithmetic on constants only")
    if isinstance(other, torch.Tensor) and other.numel() == 1:
        other = float(other)
    if (divide or node.target in (operator.sub, "sub")) and value is not a:
        raise _refuse(node.name, "a constant divided by (or minus) an activation")
    if isinstance(other, int | float):
        scale = 1.0 / other if divide else float(other) if multiply else 1.0
        shift = float(other) if not (multiply or divide) else 0.0
        return graph.add("scale_shift", node.name, [value], shape, scale=[scale], shift=[shift])
    if isinstance(other, torch.Tensor) and not (multiply or divide):
        constant = torch.broadcast_to(other.float(), (1, *shape))[0].contiguous()
        return graph.add("add_const", node.name, [value], shape, constant=constant)
    raise _refuse(node.name, "a product with a tensor constant")


def lower_layer(graph: Graph, module: nn.Module, name: str, source: str, shape: tuple[int, ...] | None) -> str:
    """Append ``module`` (a layer, or a block with a registered lowering) reading ``source``, its activation
    quantizer first if it has one; returns its output value."""
    return _lower_module(graph, module, name, source, shape)


def _lower_module(graph: Graph, module: nn.Module, name: str, source: str, shape: tuple[int, ...] | None) -> str:
    quantizer = getattr(module, "input_quant", None)
    if quantizer is not None:  # an activation quantizer runs on the layer's input (a forward pre-hook)
        source = graph.add("fake_quant", f"{name}.input_quant", [source], graph.shapes[source],
                           scale=float(quantizer.scale), zero_point=float(quantizer.zero_point),
                           levels=int(2 ** int(quantizer.bits)))
    if type(module) in _LOWERINGS:
        return _LOWERINGS[type(module)](graph, source, module, name)
    if shape is None:
        raise _refuse(name, type(module).__name__)
    if isinstance(module, nn.Dropout | nn.Identity | nn.Flatten):
        return graph.view(source, shape)
    if isinstance(module, nn.Linear):
        return graph.add("linear", name, [source], shape, module)
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        if module.padding_mode != "zeros":
            raise _refuse(name, f"{type(module).__name__} with padding_mode {module.padding_mode!r}")
        return graph.add("conv", name, [source], shape, module)
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.LayerNorm):
        return graph.add("batchnorm" if not isinstance(module, nn.LayerNorm) else "layernorm", name, [source],
                         shape, module)
    if type(module) in ACTIVATIONS:
        if isinstance(module, nn.GELU) and module.approximate != "none":
            raise _refuse(name, "GELU with the tanh approximation")
        return graph.add("act", name, [source], shape, fn=ACTIVATIONS[type(module)])
    if isinstance(module, nn.Softmax):
        return _softmax(graph, name, source, shape, module.dim)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        return _lower_pool(graph, module, name, source, shape)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        if shape[1:] != (1, 1):
            raise _refuse(name, f"AdaptiveAvgPool2d to {list(shape[1:])} (only global pooling)")
        return graph.add("mean", name, [source], shape, dims=[1, 2])
    raise _refuse(name, type(module).__name__)


def _lower_pool(graph: Graph, module: nn.Module, name: str, source: str, shape: tuple[int, ...]) -> str:
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    kernel, stride, padding = pair(module.kernel_size), pair(module.stride or module.kernel_size), pair(module.padding)
    dilation = pair(getattr(module, "dilation", 1))
    if getattr(module, "ceil_mode", False) or dilation != (1, 1) or getattr(module, "return_indices", False):
        raise _refuse(name, f"{type(module).__name__} with ceil_mode, dilation or indices")
    if isinstance(module, nn.AvgPool2d) and (module.divisor_override or (any(padding) and
                                                                          not module.count_include_pad)):
        raise _refuse(name, "AvgPool2d with divisor_override or padding left out of the count")
    kind = "maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"
    return graph.add(kind, name, [source], shape, kernel=kernel, stride=stride, padding=padding)
