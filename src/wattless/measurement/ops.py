"""Parameter and multiply-accumulate (MAC) counts of a PyTorch model, per layer, for one sample.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2 for matmul, convolution
and attention); activation sizes come from forward hooks. ONNX graphs are counted in ``onnx_ops``
(re-exported here).
"""

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ..models._inputs import sample_inputs, vocabulary
from .onnx_ops import count_onnx_macs  # re-exported: the ONNX counterpart of count_macs

__all__ = ["count_macs", "count_onnx_macs", "count_params"]

_FLOPS_PER_MAC = 2


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# The CPU attention kernel (F.scaled_dot_product_attention, nn.MultiheadAttention with need_weights=False)
# is not in FlopCounterMode's own registry.
_EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """MACs of one forward pass on one sample (batch 1), in total and per layer.

    A layer is a module with parameters or MACs of its own: its children's MACs are left to them, and
    rebuilding a weight inside a parametrization is not counted (it does not depend on the batch).

    Args:
        model: run once on random input in eval mode; its training mode is restored afterwards.
        input_shape: shape of one sample without the batch dimension, e.g. ``(784,)`` or ``(1, 28, 28)``.

    Returns:
        ``{"total": MACs, "layers": [{"name", "type", "macs", "params", "weight_numel", "in_elems",
        "out_elems"}]}``: names as in ``model.named_modules()``; ``params`` counts the layer's effective
        tensors (elements), ``weight_numel`` those not named ``*bias``; ``in_elems``/``out_elems`` are the
        elements of the tensors the layer reads and writes, summed over its calls.
    """
    was_training = model.training
    fastpath_was_enabled = torch.backends.mha.get_fastpath_enabled()
    activations: dict[str, list[int]] = {}
    hooks = [
        module.register_forward_hook(_activation_recorder(activations, name), with_kwargs=True)
        for name, module in _layer_modules(model)
    ]
    # The fused attention fast path hides its matmuls from the counter; the reference path exposes them.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        model.eval()
        # no_grad, not inference_mode: FlopCounterMode's module tracker fails on parametrized weights there
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS) as counter:
            model(torch.from_numpy(sample_inputs(1, input_shape, vocabulary(model))))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath_was_enabled)
        model.train(was_training)
        for hook in hooks:
            hook.remove()

    subtree_macs = _subtree_macs(counter, type(model).__name__)
    layers = []
    for name, module in _layer_modules(model):
        called = name in subtree_macs  # a module that ran no MAC op, or never ran, has no entry
        macs = subtree_macs[name] - _descendant_macs(module, name, subtree_macs) if called else 0
        tensors = _own_tensors(module)
        if macs == 0 and not tensors:
            continue
        in_elems, out_elems = activations.get(name, (0, 0))
        layers.append({
            "name": name,
            "type": type(module).__name__,
            "macs": macs,
            "params": sum(t.numel() for t in tensors.values()),
            "weight_numel": sum(t.numel() for key, t in tensors.items() if not key.endswith("bias")),
            "in_elems": in_elems,
            "out_elems": out_elems,
        })
    return {"total": sum(layer["macs"] for layer in layers), "layers": layers}


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, non-zero) parameter elements; a parametrized tensor counts once, as its effective value."""
    total = nonzero = 0
    seen: set[int] = set()
    for _, module in _layer_modules(model):
        for tensor in _own_tensors(module).values():
            if id(tensor) in seen:  # a weight tied between two modules
                continue
            seen.add(id(tensor))
            total += tensor.numel()
            nonzero += int(torch.count_nonzero(tensor))
    return total, nonzero


def _layer_modules(model: nn.Module):
    """(name, module) for every module except the internals of parametrizations."""
    internals = {
        id(inner)
        for module in model.modules()
        if parametrize.is_parametrized(module)
        for inner in module.parametrizations.modules()
    }
    return [(name, module) for name, module in model.named_modules() if id(module) not in internals]


def _own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters held by the module itself, with parametrized ones replaced by their effective value."""
    tensors = dict(module.named_parameters(recurse=False))
    if parametrize.is_parametrized(module):
        with torch.no_grad():
            tensors.update({name: getattr(module, name) for name in module.parametrizations})
    return tensors


def _subtree_macs(counter: FlopCounterMode, root_name: str) -> dict[str, int]:
    """MACs per module including its descendants, keyed by ``named_modules()`` name ("" is the root)."""
    macs = {}
    for tracked_name, flops_by_op in counter.get_flop_counts().items():
        if tracked_name == root_name:
            name = ""
        elif tracked_name.startswith(root_name + "."):
            name = tracked_name[len(root_name) + 1:]
        else:  # "Global", already included in the root
            continue
        macs[name] = sum(flops_by_op.values()) // _FLOPS_PER_MAC
    return macs


def _descendant_macs(module: nn.Module, name: str, subtree_macs: dict[str, int]) -> int:
    """MACs inside the module's descendants: the outermost called ones (a ModuleList is never called)."""
    total = 0
    for child_name, child in module.named_children():
        full_name = f"{name}.{child_name}" if name else child_name
        if full_name in subtree_macs:
            total += subtree_macs[full_name]
        else:
            total += _descendant_macs(child, full_name, subtree_macs)
    return total


def _activation_recorder(activations: dict[str, list[int]], name: str):
    """A forward hook adding the elements of the module's input and output tensors to activations[name]."""
    def record(module, args, kwargs, output):
        counts = activations.setdefault(name, [0, 0])
        counts[0] += _tensor_elems((args, kwargs))
        counts[1] += _tensor_elems(output)
    return record


def _tensor_elems(value) -> int:
    """Total elements of the tensors in a nest of tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return sum(_tensor_elems(item) for item in value)
    return 0

