"""Planning the C code of a graph: folding batch norms, scales and activations into the layer before them, and
placing every value in one arena (first fit, a value's space reused once no later op reads it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .graph import Graph, Op

ALIGN_FLOATS = 16
"""Arena offsets are multiples of 16 floats (64 bytes)."""
_ACT_CODES = {"relu": 1, "relu6": 2, "gelu": 3, "tanh": 4, "sigmoid": 5}


@dataclass
class Epilogue:
    """What a linear or convolution layer applies to its sums: ``act((acc + bias) * a + b)``."""

    a: np.ndarray | None = None
    b: np.ndarray | None = None
    act: int = 0


@dataclass
class Plan:
    """Offsets (floats) of every stored value in the arena, its size in floats, and the fused ops' epilogues."""

    offsets: dict[str, int] = field(default_factory=dict)
    scratch: dict[int, int] = field(default_factory=dict)
    """Op position -> arena offset of its scratch space (attention's scores; a convolution's padded input and
    decoded taps)."""
    arena_floats: int = 0
    epilogues: dict[int, Epilogue] = field(default_factory=dict)
    integer: dict[int, float] = field(default_factory=dict)
    """Linear layers that run in integers (op position -> the scale of the activation quantizer feeding them)."""


def consumers(graph: Graph, value: str) -> list[int]:
    """Positions of the ops that read ``value``'s storage (directly or through a view)."""
    return [i for i, op in enumerate(graph.ops) if any(graph.storage(v) == value for v in op.inputs)]


def fuse(graph: Graph) -> dict[int, Epilogue]:
    """Fold into each linear/conv layer the batch norm, scalar scale and activation that directly follow it when
    nothing else reads the values in between; returns the epilogue of each layer by its new position."""
    epilogues: dict[int, Epilogue] = {}
    position = 0
    while position < len(graph.ops):
        op = graph.ops[position]
        if op.kind in ("linear", "conv"):
            epilogue = Epilogue()
            while True:
                readers = consumers(graph, op.output)
                if len(readers) != 1 or graph.storage(graph.output) == op.output:
                    break
                follower = graph.ops[readers[0]]
                if readers[0] != position + 1 or follower.inputs != [op.output] or not _folds(op, follower,
                                                                                             epilogue, graph):
                    break
                op.output = follower.output
                del graph.ops[position + 1]
                if epilogue.act:
                    break
            epilogues[position] = epilogue
        position += 1
    return epilogues


def _folds(op: Op, follower: Op, epilogue: Epilogue, graph: Graph) -> bool:
    """Fold ``follower`` into ``epilogue`` if it is per output channel (or scalar) and no activation came before."""
    if epilogue.act:
        return False
    channels = graph.shapes[op.output][0] if op.kind == "conv" else graph.shapes[op.output][-1]
    if follower.kind == "act":
        epilogue.act = _ACT_CODES[follower.attrs["fn"]]
        return True
    if follower.kind == "batchnorm" and (op.kind == "conv" or len(graph.shapes[op.output]) == 1):
        a, b = batchnorm_affine(follower.module)
    elif follower.kind == "scale_shift":
        a = np.full(channels, follower.attrs["scale"][0], dtype=np.float32)
        b = np.full(channels, follower.attrs["shift"][0], dtype=np.float32)
    else:
        return False
    if epilogue.a is None:
        epilogue.a, epilogue.b = a.astype(np.float32), b.astype(np.float32)
    else:
        epilogue.a, epilogue.b = (epilogue.a * a).astype(np.float32), (epilogue.b * a + b).astype(np.float32)
    return True


def batchnorm_affine(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """A batch norm in eval mode as ``x * a + b`` per channel."""
    mean = module.running_mean.detach().double().numpy()
    var = module.running_var.detach().double().numpy()
    gamma = module.weight.detach().double().numpy() if module.weight is not None else np.ones_like(mean)
    beta = module.bias.detach().double().numpy() if module.bias is not None else np.zeros_like(mean)
    a = gamma / np.sqrt(var + module.eps)
    return a.astype(np.float32), (beta - mean * a).astype(np.float32)


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution as the C kernel sees it: 1-D ones as 2-D with height 1; ``numbers`` in the kernel's order."""

    c: int
    h: int
    w: int
    o: int
    oh: int
    ow: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def numbers(self) -> list[int]:
        return [self.c, self.h, self.w, self.o, self.oh, self.ow, *self.kernel, *self.stride, *self.pads,
                *self.dilation, self.groups]

    @property
    def scratch_floats(self) -> int:
        """The padded input (when padded) and the decoded taps of one output channel (offset and value)."""
        padded = self.c * (self.h + 2 * self.pads[0]) * (self.w + 2 * self.pads[1]) if any(self.pads) else 0
        return padded + 2 * (self.c // self.groups) * self.kernel[0] * self.kernel[1]


def conv_geometry(module: nn.Module, shape_in: tuple[int, ...], shape_out: tuple[int, ...]) -> ConvGeometry:
    two = len(shape_in) == 3
    c, h, w = shape_in if two else (shape_in[0], 1, shape_in[1])
    o, oh, ow = shape_out if two else (shape_out[0], 1, shape_out[1])
    kernel = tuple(module.kernel_size) if two else (1, module.kernel_size[0])
    stride = tuple(module.stride) if two else (1, module.stride[0])
    dilation = tuple(module.dilation) if two else (1, module.dilation[0])
    if isinstance(module.padding, str):
        pads = (0, 0) if module.padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel,
                                                                                            strict=True))
    else:
        pads = tuple(module.padding) if two else (0, module.padding[0])
    return ConvGeometry(c, h, w, o, oh, ow, kernel, stride, pads, dilation, module.groups)


def _aligned(floats: int) -> int:
    return -(-floats // ALIGN_FLOATS) * ALIGN_FLOATS


INT32_LIMIT = 2**31 - 1


def integer_layers(graph: Graph, modules: dict[str, nn.Module]) -> dict[int, float]:
    """Linear layers whose input is an activation quantizer's output (at most 256 levels) and whose weight (in
    ``modules``, the model's layers by name, packed) is integer codes of at most 8 bits: their sums of code x
    quantized input fit in int32. Position -> the input's scale."""
    from .weights import integer_codes

    found = {}
    for position, op in enumerate(graph.ops):
        if op.kind != "linear" or not integer_codes(modules[op.name]):
            continue
        source = producer(graph, op.inputs[0])
        if source is None or source.kind != "fake_quant" or source.attrs["levels"] > 256:
            continue
        if op.module.in_features * 255 * 255 <= INT32_LIMIT:
            found[position] = source.attrs["scale"]
    return found


def producer(graph: Graph, value: str) -> Op | None:
    """The op that wrote ``value``'s storage (None for the model's input)."""
    storage = graph.storage(value)
    return next((op for op in graph.ops if op.output == storage), None)


def place(graph: Graph, integer: dict[int, float] | None = None) -> Plan:
    """Arena offsets: each op's output is placed at the lowest offset free during its lifetime (first fit);
    ``integer`` layers (:func:`integer_layers`) get scratch space for their quantized input."""
    plan = Plan(integer=dict(integer or {}))
    last_use = {value: max(consumers(graph, value), default=-1) for value in graph.shapes}
    last_use[graph.storage(graph.output)] = len(graph.ops)
    live: list[tuple[int, int, str]] = []  # (offset, size, value)

    def allocate(size: int) -> int:
        offset = 0
        for start, length, _ in sorted(live):
            if offset + size <= start:
                break
            offset = max(offset, start + length)
        return offset

    for position, op in enumerate(graph.ops):
        size = _aligned(math.prod(graph.shapes[op.output]))
        offset = allocate(size)
        live.append((offset, size, op.output))
        plan.offsets[op.output] = offset
        plan.arena_floats = max(plan.arena_floats, offset + size)
        scratch = _scratch_floats(graph, op, position in plan.integer)
        if scratch:
            plan.scratch[position] = allocate(scratch)
            plan.arena_floats = max(plan.arena_floats, plan.scratch[position] + scratch)
        live = [(o, s, v) for o, s, v in live if last_use.get(v, -1) > position]
    return plan


def _scratch_floats(graph: Graph, op: Op, integer: bool = False) -> int:
    if integer:  # the quantized input as int32
        return _aligned(op.module.in_features)
    if op.kind == "attention":
        return _aligned(graph.shapes[op.inputs[0]][0])
    if op.kind == "conv":
        shape_in, shape_out = graph.shapes[op.inputs[0]], graph.shapes[op.output]
        return _aligned(conv_geometry(op.module, shape_in, shape_out).scratch_floats)
    return 0
