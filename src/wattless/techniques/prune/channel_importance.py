"""Channel importance for structured pruning: one score per channel of a Torch-Pruning dependency group.

A group (Fang et al., 2023, "DepGraph: Towards Any Structural Pruning") holds a layer's output channels
and every parameter slice coupled to them; higher scores are kept. Three criteria:

- ``l1``: L1 norm of each filter of the group's root layer (Li et al., 2017, "Pruning Filters for
  Efficient ConvNets").
- ``taylor``: first-order Taylor estimate of the loss change, ``|w · dL/dw|`` over the group's coupled
  parameters, summed over a few training batches (Molchanov et al., 2017, 2019).
- ``thinet``: greedy selection of the channels whose removal least increases the reconstruction error
  of the next layer's outputs on calibration inputs (Luo et al., 2017, "ThiNet"); the score is the
  position in the greedy removal order.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError
from ...train import loss_function

CALIBRATION_BATCHES = 8
"""Batches the calibration inputs are split into (Taylor scores are summed over them)."""
THINET_SAMPLES = 4096
"""Sampled (input, location, output unit) entries of the next layer's output that ThiNet reconstructs."""
_CONSUMER_HANDLERS = (tp.prune_linear_in_channels, tp.prune_conv_in_channels)


def l1_scores(groups: list[tp.dependency.Group]) -> list[torch.Tensor]:
    """L1 norm of every output filter of each group's root layer."""
    scorer = tp.importance.GroupMagnitudeImportance(p=1, group_reduction="first", normalizer=None)
    return [scorer(group) for group in groups]


def taylor_scores(model: nn.Module, groups: list[tp.dependency.Group], X: torch.Tensor, y: torch.Tensor,
                  task: str) -> list[torch.Tensor]:
    """``|sum(w * dL/dw)|`` per channel and coupled layer, summed over the group and over calibration batches."""
    scorer = tp.importance.GroupTaylorImportance(group_reduction="sum", normalizer=None, multivariable=True)
    criterion = loss_function(task)
    totals = [torch.zeros(len(group[0].idxs)) for group in groups]
    for X_batch, y_batch in zip(X.chunk(CALIBRATION_BATCHES), y.chunk(CALIBRATION_BATCHES), strict=True):
        model.zero_grad(set_to_none=True)
        outputs = model(X_batch)
        criterion(outputs if task == "classification" else outputs.reshape(-1), y_batch).backward()
        totals = [total + scorer(group).cpu() for total, group in zip(totals, groups, strict=True)]
    model.zero_grad(set_to_none=True)
    return totals


def thinet_scores(model: nn.Module, groups: list[tp.dependency.Group], X: torch.Tensor,
                  generator: torch.Generator) -> list[torch.Tensor]:
    """Reversed greedy removal order per group: the channel ThiNet removes first scores 0."""
    scores = []
    for group in groups:
        channels = len(group[0].idxs)
        consumers = [item for item in group if item.dep.handler in _CONSUMER_HANDLERS]
        if not consumers:
            raise ConfigError(f"importance='thinet' needs the channels of {group[0].dep.target.name} to feed a "
                              "Linear or Conv2d layer; use importance='l1' or 'taylor'")
        contributions = torch.cat([_root_contributions(model, item, channels, X, generator) for item in consumers],
                                  dim=1)
        order = greedy_removal_order(contributions)
        score = torch.empty(channels)
        score[order] = torch.arange(channels, dtype=score.dtype)
        scores.append(score)
    return scores


def greedy_removal_order(contributions: torch.Tensor) -> list[int]:
    """Order in which ThiNet's greedy search removes channels (Luo et al., 2017, Eq. 6).

    Args:
        contributions: (channels, samples), each channel's additive share of sampled next-layer outputs.

    Each step removes the channel that, added to those already removed, gives the smallest squared
    error ``||sum of removed contributions||^2``; with the Gram matrix ``G`` the increase for channel
    ``c`` is ``2 * sum_removed G[r, c] + G[c, c]``.
    """
    shares = contributions.detach().double().cpu()
    gram = shares @ shares.T
    removed_sum = torch.zeros(len(gram), dtype=gram.dtype)
    remaining = torch.ones(len(gram), dtype=torch.bool)
    order = []
    for _ in range(len(gram)):
        increase = torch.where(remaining, 2 * removed_sum + gram.diagonal(), torch.inf)
        channel = int(increase.argmin())
        order.append(channel)
        remaining[channel] = False
        removed_sum += gram[channel]
    return order


def _root_contributions(model: nn.Module, item, channels: int, X: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
    """(root channels, THINET_SAMPLES): the share of each root channel in sampled outputs of one consumer layer."""
    layer = item.dep.target.module
    if not _thinet_supports(layer):
        raise ConfigError(f"importance='thinet' reconstructs the outputs of Linear and Conv2d layers (groups=1, "
                          f"zero padding); {item.dep.target.name} is not one; use importance='l1' or 'taylor'")
    patches = _sampled_patches(model, layer, X, generator)  # (samples, in_channels, taps)
    weights = layer.weight.detach().reshape(len(layer.weight), patches.shape[1], -1)  # (out, in_channels, taps)
    units = torch.randint(len(weights), (len(patches),), generator=generator)
    per_input = torch.einsum("mct,mct->cm", patches, weights[units])  # (in_channels, samples)
    # A root channel may feed several inputs (a conv channel flattened into a Linear): add their shares.
    roots = torch.as_tensor(item.root_idxs, device=per_input.device)
    return per_input.new_zeros(channels, len(patches)).index_add_(0, roots, per_input[item.idxs])


def _thinet_supports(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1
                                            and layer.padding_mode == "zeros" and not isinstance(layer.padding, str))


def _sampled_patches(model: nn.Module, layer: nn.Module, X: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """THINET_SAMPLES random receptive fields of ``layer``'s input while ``model`` runs on ``X``, batch by batch
    so that only the samples are kept: (samples, in_channels, taps)."""
    batches = X.chunk(CALIBRATION_BATCHES)
    per_batch = -(-THINET_SAMPLES // len(batches))
    picked: list[torch.Tensor] = []

    def record(module: nn.Module, args: tuple) -> None:
        patches = _patches(module, args[0].detach())
        picked.append(patches[torch.randint(len(patches), (per_batch,), generator=generator)])

    handle = layer.register_forward_pre_hook(record)
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        handle.remove()
    return torch.cat(picked)[:THINET_SAMPLES]


def _patches(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Every receptive field of ``layer`` in ``inputs``: (fields, in_channels, taps); taps is 1 for Linear."""
    if isinstance(layer, nn.Linear):
        return inputs.reshape(-1, layer.in_features, 1)
    columns = F.unfold(inputs, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                       stride=layer.stride)  # (batch, in_channels * taps, locations)
    return columns.transpose(1, 2).reshape(-1, layer.in_channels, columns.shape[1] // layer.in_channels)
