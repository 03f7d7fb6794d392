"""Structured pruning: remove whole filters, channels and neurons, so the model is physically smaller and
faster in every engine, then fine-tune.

Built on Torch-Pruning's dependency graph (Fang et al., 2023, "DepGraph"), which keeps coupled layers
consistent: removing a layer's output channel also removes the next layer's matching inputs (through
flattening), BatchNorm entries and residual partners. Channels are ranked by L1 filter norm (Li et al.,
2017), first-order Taylor importance (Molchanov et al., 2017, 2019) or ThiNet's greedy next-layer
reconstruction (Luo et al., 2017); see :mod:`.channel_importance`. Layers that produce the model's
outputs keep their size.

The edit is saved as Torch-Pruning's pruning history (layer names and channel indices, plain JSON) and
replayed on a freshly built model when the file is loaded, so no pickled module is needed.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch_pruning as tp
from pydantic import ConfigDict, Field
from torch import nn
from torch.nn.utils import parametrize

from ...data import Dataset
from ...errors import ConfigError
from ...models._inputs import error_line, zero_sample_forward
from ...structure import record_edit, register_edit
from ...train import LearningRateValue
from .._registry import Context, TechniqueConfig, finetune, register_technique
from .channel_importance import l1_scores, taylor_scores, thinet_scores

CALIBRATION_SAMPLES = 512
"""Training samples used to score channels (Taylor, ThiNet)."""
_MAX_REPLAY_INPUT_ELEMENTS = 2**26
"""Largest example input a replayed edit may ask for (a corrupt file must not allocate gigabytes)."""
_OPTYPE = tp.ops.OPTYPE
_CHANNEL_PRESERVING = {_OPTYPE.ELEMENTWISE, _OPTYPE.RESHAPE, _OPTYPE.CONCAT, _OPTYPE.SPLIT, _OPTYPE.SLICE,
                       _OPTYPE.UNBIND, _OPTYPE.EXPAND, _OPTYPE.OUTPUT}
"""Graph ops that pass channels through, so a layer behind them still shapes the model's outputs."""


ROOT_TYPES = (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, tp.ops.TORCH_LSTM, tp.ops.TORCH_EMBED)
"""Layers whose output channels start a pruning group: besides convolutions and Linear layers, an LSTM's hidden
size and an embedding's width (with everything coupled to them)."""


class StructuredPruneConfig(TechniqueConfig):
    """Default ranking (version 2): first-order Taylor importance, the setting that worked where L1 did not.

    Evidence (run for issue 18 on the compatibility matrix's stored models, ratio 0.5, 5 epochs at lr 0.003,
    200 test samples): split/concat/skip (99.5%): l1 78% (the matrix's failed cell), taylor 98%; ResNet-18
    (width 0.25): 100% with either. LeNet-300-100 on Fashion-MNIST (ratio 0.5, 3 epochs; drops in points,
    validation / test): l1 0.25 / 0.11, taylor 0.38 / 0.19 (a tie within noise). The pruning study and the
    shipped ``prune-int8`` recipe use taylor (LeNet-300-100: 0.22 points). Configs stored at version 1 keep
    ``importance=l1`` when they leave it out (:meth:`migrate`).
    """

    model_config = ConfigDict(coerce_numbers_to_str=True)  # layer names such as 1 in ignore=[1]

    version: int = 2
    defaults_before: ClassVar[dict[int, dict[str, Any]]] = {1: {"importance": "l1"}}
    ratio: float = Field(0.5, gt=0.0, lt=1.0, description="fraction of channels removed from every prunable layer")
    importance: Literal["l1", "taylor", "thinet"] = Field("taylor", description="channel ranking: filter L1 norm, "
                                                          "first-order Taylor (|w * dL/dw|) or ThiNet")
    finetune_epochs: int = Field(2, ge=0, le=1000)
    lr: LearningRateValue = Field(1e-3, description="fine-tuning learning rate")
    round_to: int | None = Field(None, ge=1, description="keep a multiple of this many channels per layer")
    ignore: list[str] = Field(default_factory=list, description="layers (and children) whose outputs keep all channels")


def _structured_applies_to(model: nn.Module, cfg: StructuredPruneConfig | None = None) -> str | None:
    reason = prunable_reason(model)
    return None if reason is None else f"Torch-Pruning cannot narrow {reason}"


@register_technique("prune.structured", StructuredPruneConfig, applies_to=_structured_applies_to,
                    claims=("params", "macs", "size_bytes"))
def prune_structured(model: nn.Module, cfg: StructuredPruneConfig, ctx: Context) -> nn.Module:
    """Remove a fraction of every layer's channels (the model shrinks), keeping coupled layers consistent.

    Works on a copy and returns it; ``model`` is left as it was. When the narrowed model's own code no longer runs
    (it fixes widths the dependency graph cannot see, e.g. attention heads in a reshape), each channel group is
    tried alone and only those the model runs without are narrowed (a warning names the others).

    Raises:
        ConfigError: nothing could be narrowed, or no channel group can be narrowed with the model still running.
    """
    check_prunable(model)
    input_shape = ctx.dataset.input_shape
    steps = _planned_steps(model, cfg, ctx)
    if not steps:
        raise ConfigError("prune.structured found no channels to remove: every layer is coupled to the model's "
                          "outputs, ignored, or of a kind Torch-Pruning does not narrow (GRU, stacked LSTM); use "
                          "prune.magnitude or prune.nm on this model")
    narrowed, failure = _narrowed(model, steps, input_shape)
    if failure is not None:
        runnable = [step for step in steps if _narrowed(model, [step], input_shape)[1] is None]
        narrowed, _ = _narrowed(model, runnable, input_shape) if runnable else (None, None)
        if narrowed is None:
            raise ConfigError(f"prune.structured narrowed the layers, but the model's own code no longer runs "
                              f"({failure}): it fixes widths the dependency graph cannot see (e.g. attention heads); "
                              "use prune.magnitude or prune.nm on this model")
        whole = [step[0] for step in steps if step not in runnable]
        if not ctx.quiet:
            warnings.warn(f"prune.structured kept {len(whole)} channel group(s) whole, as the model's own code fixes "
                          f"their width ({failure}): {', '.join(whole)[:300]}", stacklevel=3)
        steps = runnable
    record_edit(narrowed, {"kind": "torch_pruning", "input_shape": list(input_shape), "history": steps})
    narrowed.train(model.training)
    finetune(narrowed, ctx, cfg.finetune_epochs, cfg.lr)
    return narrowed


def _planned_steps(model: nn.Module, cfg: StructuredPruneConfig, ctx: Context) -> list[list]:
    """``[layer, prunes its outputs, channel indices]`` per channel group, scored and checked on a copy of the
    unpruned model (the form of Torch-Pruning's pruning history)."""
    scored = copy.deepcopy(model)
    with torch.enable_grad():  # Torch-Pruning traces the graph through autograd
        graph = _graph(scored, ctx.dataset.input_shape)
        groups = list(graph.get_all_groups(ignored_layers=_kept_layers(scored, graph, cfg.ignore),
                                           root_module_types=ROOT_TYPES))
        scores = _channel_scores(scored, groups, cfg.importance, ctx)
    names = {module: name for name, module in scored.named_modules()}
    steps = []
    for group, score in zip(groups, scores, strict=True):
        root, handler = group[0].dep.target.module, group[0].dep.handler
        count = channels_to_remove(len(score), cfg.ratio, cfg.round_to, names[root])
        idxs = score.argsort(stable=True)[:count].tolist()
        if count and not graph.check_pruning_group(graph.get_pruning_group(root, handler, idxs)):
            raise ConfigError(f"ratio={cfg.ratio} would remove every channel of a layer coupled to {names[root]!r}; "
                              f"lower ratio or add {names[root]!r} to ignore")
        if count:
            steps.append([names[root], handler.__name__ == "prune_out_channels", [int(i) for i in idxs]])
    return steps


def _narrowed(model: nn.Module, steps: list[list], input_shape: tuple[int, ...]) -> tuple[nn.Module | None, str | None]:
    """A copy of ``model`` with ``steps`` applied, or None and the error its forward then ends in."""
    narrowed = copy.deepcopy(model)
    try:
        replay_pruning(narrowed, {"input_shape": list(input_shape), "history": steps})
    except Exception as error:  # Torch-Pruning on a layer it has no rule for (an LSTM's assertion, ...)
        return None, error_line(error)
    _, error = zero_sample_forward(narrowed, input_shape)
    return (narrowed, None) if error is None else (None, error_line(error))


def _graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    return tp.DependencyGraph().build_dependency(model, example_inputs=_example_input(model, input_shape),
                                                 verbose=False)


def check_prunable(model: nn.Module) -> None:
    """Refuse (ConfigError) a model :func:`prunable_reason` says Torch-Pruning cannot keep consistent."""
    reason = prunable_reason(model)
    if reason is not None:
        raise ConfigError(f"prune.structured cannot prune {reason}")


def prunable_reason(model: nn.Module) -> str | None:
    """Why Torch-Pruning cannot keep ``model`` consistent, or None: parametrized (masked or quantized) layers,
    whose stored tensors would no longer match, and grouped convolutions. Weights a module holds itself
    (positional embeddings, class tokens, layer scales) are Torch-Pruning's "unwrapped parameters": their last
    non-singleton dimension follows the channels."""
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            return (f"layer {name!r}: it is masked or quantized by an earlier step; put prune.structured first in "
                    "the recipe")
        if isinstance(module, nn.modules.conv._ConvNd) and 1 < module.groups != module.out_channels:
            return (f"layer {name!r}: a grouped convolution ({module.groups} groups) must lose channels evenly in "
                    "every group, which Torch-Pruning's dependency graph does not do; use prune.magnitude or "
                    "prune.nm, or groups=1")
    return None


def channels_to_remove(channels: int, ratio: float, round_to: int | None, layer: str) -> int:
    """How many of a layer's ``channels`` to remove so that ``round((1 - ratio) * channels)`` remain, rounded
    to a multiple of ``round_to``; ConfigError if none would remain."""
    step = round_to or 1
    keep = min(channels, step * round(channels * (1 - ratio) / step))
    if keep < 1:
        rounding = f" and round_to={round_to}" if round_to else ""
        raise ConfigError(f"ratio={ratio}{rounding} would remove all {channels} channels of layer {layer!r}; "
                          f"lower ratio{' or round_to' if round_to else ''}, or add {layer!r} to ignore")
    return channels - keep


def output_layers(graph: tp.DependencyGraph) -> list[nn.Module]:
    """Layers whose outputs reach the model's outputs through channel-preserving ops only."""
    stack = [node for node in graph.module2node.values() if not node.outputs]
    found, seen = [], set()
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            if node.type in _CHANNEL_PRESERVING:
                stack.extend(node.inputs)
            else:
                found.append(node.module)
    return found


def _kept_layers(model: nn.Module, graph: tp.DependencyGraph, ignore: list[str]) -> list[nn.Module]:
    """The output layers, stacked LSTMs (Torch-Pruning narrows single-layer ones only) and the user's ``ignore``
    layers with all their children."""
    modules = dict(model.named_modules())
    unknown = [name for name in ignore if name not in modules]
    if unknown:
        layers = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
        raise ConfigError(f"ignore names unknown layers {unknown}; layers of this model: {', '.join(layers[:20])}")
    unsupported = [m for m in modules.values() if isinstance(m, nn.LSTM) and m.num_layers > 1]  # Torch-Pruning: 1
    return output_layers(graph) + unsupported + [sub for name in ignore for sub in modules[name].modules()]


def _channel_scores(model: nn.Module, groups: list, importance: str, ctx: Context) -> list[torch.Tensor]:
    if importance == "l1":
        return l1_scores(groups)
    X, y = _calibration_data(ctx.dataset, ctx.seed, model)
    model.eval()  # no dropout, no BatchNorm statistics updates while scoring
    if importance == "taylor":
        return taylor_scores(model, groups, X, y, ctx.dataset.task)
    return thinet_scores(model, groups, X, torch.Generator().manual_seed(ctx.seed))


def _calibration_data(data: Dataset, seed: int, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """CALIBRATION_SAMPLES training samples drawn with ``seed``, as tensors on the model's device."""
    rows = np.random.default_rng(seed).permutation(len(data.X_train))[:CALIBRATION_SAMPLES]
    device = _device_of(model)
    y_dtype = torch.long if data.task == "classification" else torch.float32
    return (torch.as_tensor(data.X_train[rows], device=device),
            torch.as_tensor(data.y_train[rows], dtype=y_dtype, device=device))


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A zero batch of one on the model's device (``meta`` for the skeleton a model file is checked against)."""
    return torch.zeros(1, *input_shape, device=_device_of(model))


@register_edit("torch_pruning")
def replay_pruning(model: nn.Module, edit: dict[str, Any]) -> None:
    """Re-apply a recorded Torch-Pruning history to a freshly built model; ValueError if it does not fit.

    Like Torch-Pruning's ``load_pruning_history``, but every step's indices are checked against the
    layer's current width first: its pruning functions trust them, and a file may be corrupt.
    """
    input_shape, history = _checked_edit(model, edit)
    with torch.enable_grad():
        graph = _graph(model, input_shape)
    for name, is_output, idxs in history:
        layer = model.get_submodule(name)
        pruner = graph.get_pruner_of_module(layer)
        if pruner is None:
            raise ValueError(f"pruning history names layer {name!r}, which cannot be pruned")
        width = pruner.get_out_channels(layer) if is_output else pruner.get_in_channels(layer)
        if width is None or len(set(idxs)) != len(idxs) or len(idxs) >= width or max(idxs, default=0) >= width:
            raise ValueError(f"pruning history removes channels {str(idxs)[:60]} of {name!r}, which has {width}")
        group = graph.get_pruning_group(layer, pruner.prune_out_channels if is_output else pruner.prune_in_channels,
                                        idxs)
        if not graph.check_pruning_group(group):
            raise ValueError(f"pruning history would empty a layer coupled to {name!r}")
        with torch.device("cpu"):  # Torch-Pruning builds index tensors on the default device; the skeleton is meta
            group.prune(record_history=False)


def _checked_edit(model: nn.Module, edit: dict[str, Any]) -> tuple[tuple[int, ...], list]:
    """The edit's example input shape and history, after checking their types and layer names."""
    shape, history = edit.get("input_shape"), edit.get("history")
    if not (isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape)
            and math.prod(shape) <= _MAX_REPLAY_INPUT_ELEMENTS):
        raise ValueError(f"bad input_shape {str(shape)[:80]} in a torch_pruning edit")
    if not isinstance(history, list):
        raise ValueError("the torch_pruning edit has no history list")
    names = {name for name, _ in model.named_modules()}
    for step in history:
        if not (isinstance(step, list) and len(step) == 3 and step[0] in names and isinstance(step[1], bool)
                and isinstance(step[2], list) and all(type(i) is int and i >= 0 for i in step[2])):
            raise ValueError(f"malformed pruning step {str(step)[:80]}")
    return tuple(shape), history
