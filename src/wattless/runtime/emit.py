"""Writing the C library of a model: ``model.h``, ``model.c``, ``main.c`` and a ``README.md``, from Jinja2 templates.

Why by hand: no existing compiler executes these packed forms. TVM, microTVM, ONNX-based tools and TFLite Micro
take dense (or int8) tensors, so a 4-bit k-means layer with 95% of its weights pruned would be expanded to floats
or bytes and lose the point of compressing it; here the generated code reads the codes, tables and sparse
positions as the model file stores them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from .._markdown import markdown_code, markdown_text
from ..errors import ModelError
from .graph import Graph, Op
from .plan import Plan, batchnorm_affine, conv_geometry
from .weights import bias_of, layer_weight, pack_codes


def _no_comment_end(value: Any) -> Any:
    """Every value printed into a template, with ``*/`` and ``/*`` broken up: names (a model's, a ``csv:PATH``
    data set's, class names) go into C comments, where a ``*/`` would end the comment and inject code."""
    return value.replace("*/", "* /").replace("/*", "/ *") if isinstance(value, str) else value


_ENV = Environment(loader=PackageLoader("wattless.runtime", "templates"), undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=_no_comment_end)
_ENV.filters.update(md=markdown_text, code=markdown_code)  # names in README.md render as text
_CODE = {1: "WL_CODE1", 2: "WL_CODE2", 4: "WL_CODE4", 8: "WL_CODE8", 16: "WL_CODE16"}


@dataclass(frozen=True)
class Kernel:
    """One instantiated weight kernel: ``op`` (linear or conv), weight ``form``, code ``bits``, ``sparse``."""

    op: str
    form: str
    bits: int
    sparse: bool
    integer: bool = False
    """Inputs from an activation quantizer, multiplied with the codes in integers (int32 sums)."""

    @property
    def fn(self) -> str:
        code = "" if self.form == "f32" else str(self.bits)
        return f"wl_{self.op}_{self.form}{code}{'_sparse' if self.sparse else ''}{'_int' if self.integer else ''}"

    def code(self, index: str) -> str:
        """The C expression of the integer code at entry ``index``."""
        return f"(int32_t){_CODE[self.bits]}(w->codes, {index})"

    def weight(self, index: str) -> str:
        """The C expression of the weight (or code) at entry ``index``."""
        if self.form == "f32":
            return f"w->values[{index}]"
        code = f"{_CODE[self.bits]}(w->codes, {index})"
        return f"lut[{code}]" if self.form == "lut" else f"(float){code}"


class CWriter:
    """Collects the const arrays and the statements of ``wl_predict`` for a planned graph."""

    def __init__(self, graph: Graph, plan: Plan, modules: dict[str, Any]):
        self.graph, self.plan, self.modules = graph, plan, modules
        self.arrays: list[str] = []
        self.statements: list[str] = []
        self.tiled = not plan.integer and tileable(graph)  # integer layers run one sample at a time
        self.tile_statements: list[str] = []
        self.kernels: dict[Kernel, None] = {}
        self.weight_bytes = 0
        self.layers: list[dict[str, Any]] = []

    def pointer(self, value: str) -> str:
        storage = self.graph.storage(value)
        return "input" if storage == "input" else f"(arena + {self.plan.offsets[storage]})"

    def array(self, name: str, ctype: str, data: np.ndarray | list) -> str:
        """A ``static const`` array; returns its name. Floats are written so they read back bit for bit."""
        data = np.asarray(data).reshape(-1)
        if ctype == "float":
            data = data.astype(np.float32)
            if not np.isfinite(data).all():
                raise ModelError(f"{name} holds NaN or infinite values; the native export needs finite weights")
            # the shortest text of the exact value: C's correctly rounded parse gives back the same float32
            text = "f, ".join(map(repr, data.astype(np.float64).tolist())) + ("f" if len(data) else "")
        else:
            text = ", ".join(map(str, data.astype(np.int64).tolist()))
        self.arrays.append(f"static const {ctype} {name}[{max(len(data), 1)}] = {{{text or '0'}}};")
        self.weight_bytes += len(data) * {"float": 4, "uint8_t": 1, "uint32_t": 4, "int": 4}[ctype]
        return name

    def weights(self, op: Op, index: int, epilogue) -> str:
        """The ``wl_weights`` of a linear/conv layer; registers the kernel it needs."""
        module = self.modules[op.name]
        weight = layer_weight(module)
        prefix = f"w{index}"
        fields = {"values": "0", "codes": "0", "p0": "0", "p1": "0", "per_row": "0", "row_ptr": "0", "gaps": "0"}
        if weight.form == "f32":
            fields["values"] = self.array(f"{prefix}_values", "float", weight.values)
        else:
            codes = pack_codes(weight.codes, weight.bits)
            fields["codes"] = self.array(f"{prefix}_codes", "uint8_t", codes.view(np.uint8))
        if weight.form == "affine":
            fields["p0"] = self.array(f"{prefix}_scale", "float", weight.scale)
            fields["p1"] = self.array(f"{prefix}_offset", "float", weight.offset)
        elif weight.form == "lut":
            table = weight.table
            if weight.bits <= 4:  # the vector kernel reads a table as two registers of 8 values
                table = np.pad(table, ((0, 0), (0, 16 - table.shape[1])))
            fields["p0"] = self.array(f"{prefix}_table", "float", table)
            fields["per_row"] = str(table.shape[1] if len(table) > 1 else 0)
        if weight.sparse:
            fields["row_ptr"] = self.array(f"{prefix}_row_ptr", "uint32_t", weight.row_ptr)
            fields["gaps"] = self.array(f"{prefix}_gaps", "uint8_t", weight.gaps)
        bias = bias_of(module)
        fields["bias"] = self.array(f"{prefix}_bias", "float", bias) if bias is not None else "0"
        fields["a"] = self.array(f"{prefix}_a", "float", epilogue.a) if epilogue.a is not None else "0"
        fields["b"] = self.array(f"{prefix}_b", "float", epilogue.b) if epilogue.b is not None else "0"
        fields["act"] = str(epilogue.act)
        order = ("values", "codes", "p0", "p1", "per_row", "row_ptr", "gaps", "bias", "a", "b", "act")
        self.arrays.append(f"static const wl_weights {prefix} = {{{', '.join(fields[k] for k in order)}}};")
        kernel = Kernel(op.kind, weight.form, weight.bits, weight.sparse, index in self.plan.integer)
        self.kernels[kernel] = None
        self.layers.append({"name": op.name, "op": op.kind, "form": weight.form, "bits": weight.bits,
                            "sparse": weight.sparse, "entries": weight.entries, "weights": weight.rows * weight.cols,
                            "integer": kernel.integer,
                            "note": weight.note})
        return kernel.fn

    def emit(self, position: int, op: Op) -> None:
        x = [self.pointer(v) for v in op.inputs]
        y = self.pointer(op.output)
        shape_in, shape_out = self.graph.shapes[op.inputs[0]], self.graph.shapes[op.output]
        n = math.prod(shape_out)
        fn = None
        if op.kind == "linear":
            fn = self.weights(op, position, self.plan.epilogues.get(position))
            k, o = op.module.in_features, op.module.out_features
            integer = ""
            if position in self.plan.integer:
                integer = (f", {c_float(self.plan.integer[position])}, "
                           f"(int32_t *)(void *)(arena + {self.plan.scratch[position]})")
            self.statements.append(f"{fn}({x[0]}, {y}, {math.prod(shape_in) // k}, {k}, {o}, &w{position}{integer});")
        elif op.kind == "conv":
            self.statements.append(self._conv(op, position, x[0], y, shape_in, shape_out))
        elif op.kind in _SIMPLE:
            self.statements.append(_SIMPLE[op.kind](self, op, position, x, y, shape_in, shape_out, n))
        else:
            raise ModelError(f"the native C export has no kernel for {op.kind} ({op.name})")
        if self.tiled:
            self._emit_tile(position, op, fn)

    def _conv(self, op: Op, position: int, x: str, y: str, shape_in, shape_out) -> str:
        fn = self.weights(op, position, self.plan.epilogues.get(position))
        numbers = conv_geometry(op.module, shape_in, shape_out).numbers
        return f"{fn}({x}, {y}, {', '.join(map(str, numbers))}, &w{position}, (arena + {self.plan.scratch[position]}));"

    def tile_pointer(self, value: str) -> str:
        """Where ``value`` lives in :func:`wl_predict_batch`'s tile arena (``TILE`` samples, sample-minor)."""
        storage = self.graph.storage(value)
        offset = self.tile_input_offset if storage == "input" else TILE * self.plan.offsets[storage]
        return f"(arena + {offset})"

    @property
    def tile_input_offset(self) -> int:
        """Floats before the tile of inputs (after ``TILE`` times the one-sample arena)."""
        return TILE * self.plan.arena_floats

    @property
    def tile_arena_floats(self) -> int:
        """Floats of :func:`wl_predict_batch`'s arena: ``TILE`` samples' values and their inputs."""
        return TILE * (self.plan.arena_floats + math.prod(self.graph.shapes[self.graph.input]))

    def _emit_tile(self, position: int, op: Op, fn: str | None) -> None:
        """The op on a tile of ``TILE`` samples (graphs :func:`tileable` accepts: linear and element-wise ops)."""
        x = [self.tile_pointer(v) for v in op.inputs]
        y = self.tile_pointer(op.output)
        n = math.prod(self.graph.shapes[op.output]) * TILE
        if op.kind == "linear":
            k, o = op.module.in_features, op.module.out_features
            self.tile_statements.append(f"{fn}_tile({x[0]}, {y}, {k}, {o}, &w{position});")
        else:
            self.tile_statements.append(_SIMPLE[op.kind](self, op, position, x, y, None, None, n))


TILE = 8
"""Samples :func:`wl_predict_batch` runs at once in a tileable graph (``WL_TILE``)."""
TILE_KINDS = frozenset({"linear", "act", "add", "scale_shift", "fake_quant"})
"""Ops whose tile form is written: linear layers, and element-wise ops (layout-free)."""


def tileable(graph: Graph) -> bool:
    """Whether every op works on a tile of samples: linear layers on whole samples (one row each) and element-wise
    ops. Views keep the order of the values, so a flattened image qualifies."""
    return all(op.kind in TILE_KINDS and (op.kind != "linear" or
                                          math.prod(graph.shapes[op.inputs[0]]) == op.module.in_features)
               for op in graph.ops)


def c_float(value: float) -> str:
    """A float32 constant as C text that reads back to the same value."""
    value = float(np.float32(value))
    if not np.isfinite(value):
        raise ModelError(f"a constant of the model is {value}; the native export needs finite values")
    return repr(value) + "f"


def _ints(writer: CWriter, name: str, values) -> str:
    return writer.array(name, "int", list(values))


def _act(w, op, i, x, y, si, so, n):
    return f"wl_act_n({x[0]}, {y}, {n}, {dict(relu=1, relu6=2, gelu=3, tanh=4, sigmoid=5)[op.attrs['fn']]});"


def _batchnorm(w, op, i, x, y, si, so, n):
    a, b = batchnorm_affine(op.module)
    return (f"wl_channel_affine({x[0]}, {y}, {si[0]}, {n // si[0]}, {w.array(f'bn{i}_a', 'float', a)}, "
            f"{w.array(f'bn{i}_b', 'float', b)});")


def _layernorm(w, op, i, x, y, si, so, n):
    module = op.module
    width = math.prod(module.normalized_shape)
    gamma = w.array(f"ln{i}_gamma", "float", module.weight.detach().numpy()) if module.weight is not None else "0"
    beta = w.array(f"ln{i}_beta", "float", module.bias.detach().numpy()) if module.bias is not None else "0"
    return f"wl_layernorm({x[0]}, {y}, {n // width}, {width}, {gamma}, {beta}, {c_float(module.eps)});"


def _pool(w, op, i, x, y, si, so, n):
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    ph, pw = op.attrs["padding"]
    return (f"wl_pool({x[0]}, {y}, {si[0]}, {si[1]}, {si[2]}, {so[1]}, {so[2]}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, "
            f"{int(op.kind == 'maxpool')});")


def _mean(w, op, i, x, y, si, so, n):
    reduce = [int(d in op.attrs["dims"]) for d in range(len(si))]
    return (f"wl_mean({x[0]}, {y}, {len(si)}, {_ints(w, f'mean{i}_shape', si)}, "
            f"{_ints(w, f'mean{i}_reduce', reduce)}, {n});")


def _permute(w, op, i, x, y, si, so, n):
    return (f"wl_permute({x[0]}, {y}, {len(si)}, {_ints(w, f'perm{i}_shape', si)}, "
            f"{_ints(w, f'perm{i}_order', op.attrs['order'])});")


def _pad(w, op, i, x, y, si, so, n):
    pads, before = op.attrs["pads"], [0] * len(si)
    for d in range(len(pads) // 2):  # F.pad lists (before, after) pairs from the last dim backwards
        before[len(si) - 1 - d] = pads[2 * d]
    return (f"wl_pad({x[0]}, {y}, {len(si)}, {_ints(w, f'pad{i}_shape', si)}, {_ints(w, f'pad{i}_out', so)}, "
            f"{_ints(w, f'pad{i}_before', before)}, {c_float(op.attrs['value'])});")


def _concat(w, op, i, x, y, si, so, n):
    dim = op.attrs["dim"]
    outer, inner_out = math.prod(so[:dim]), math.prod(so[dim:])
    statements, offset = [], 0
    for value, pointer in zip(op.inputs, x, strict=True):
        inner = math.prod(w.graph.shapes[value][dim:])
        statements.append(f"wl_copy_blocks({pointer}, {y}, {outer}, {inner}, {inner_out}, {offset});")
        offset += inner
    return " ".join(statements)


def _slice(w, op, i, x, y, si, so, n):
    dim = op.attrs["dim"]
    outer, stride = math.prod(si[:dim]), math.prod(si[dim:])
    return (f"wl_take_blocks({x[0]}, {y}, {outer}, {math.prod(so[dim:])}, {stride}, "
            f"{op.attrs['start'] * math.prod(si[dim + 1:])});")


def _attention(w, op, i, x, y, si, so, n):
    return (f"wl_attention({x[0]}, {y}, {so[0]}, {so[1]}, {op.attrs['heads']}, "
            f"(arena + {w.plan.scratch[i]}));")


_SIMPLE = {
    "act": _act, "batchnorm": _batchnorm, "layernorm": _layernorm, "maxpool": _pool, "avgpool": _pool,
    "mean": _mean, "permute": _permute, "pad": _pad, "concat": _concat, "slice": _slice,
    "attention": _attention,
    "add": lambda w, op, i, x, y, si, so, n: f"wl_add({x[0]}, {x[1]}, {y}, {n});",
    "add_const": lambda w, op, i, x, y, si, so, n:
        f"wl_add_const({x[0]}, {w.array(f'const{i}', 'float', op.attrs['constant'].numpy())}, {y}, {n});",
    "scale_shift": lambda w, op, i, x, y, si, so, n:
        f"wl_scale_shift({x[0]}, {y}, {n}, {c_float(op.attrs['scale'][0])}, {c_float(op.attrs['shift'][0])});",
    "softmax": lambda w, op, i, x, y, si, so, n: f"wl_softmax({x[0]}, {y}, {n // so[-1]}, {so[-1]});",
    "fake_quant": lambda w, op, i, x, y, si, so, n:
        (f"wl_fake_quant({x[0]}, {y}, {n}, {c_float(op.attrs['scale'])}, {c_float(op.attrs['zero_point'])}, "
         f"{c_float(op.attrs['levels'])});"),
}


def render(name: str, context: dict[str, Any]) -> str:
    """One of the templates (``model.h.j2`` ...) filled with ``context``."""
    return _ENV.get_template(name).render(**context)


def describe_json(value: Any) -> str:
    """JSON for a C comment: no ``*/`` can end the comment early."""
    return json.dumps(value, sort_keys=True).replace("*/", "* /")
