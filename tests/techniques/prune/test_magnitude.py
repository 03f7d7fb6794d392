"""Magnitude pruning: exact sparsity, layer-wise vs global, masks that survive fine-tuning."""

import pytest
import torch

from wattless.api import apply_steps
from wattless.techniques.prune.magnitude import magnitude_masks, prunable_weights


def sparsity_of(module):
    weights = [m.weight for _, m in prunable_weights(module)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_achieved_sparsity_equals_requested(digits, trained_mlp, scope, sparsity):
    pruned = apply_steps(trained_mlp, digits, [f"prune.magnitude:sparsity={sparsity},scope={scope},finetune_epochs=0"])
    assert sparsity_of(pruned.module) == pytest.approx(sparsity, abs=1e-3)
    if scope == "layer":
        for _, m in prunable_weights(pruned.module):
            assert float((m.weight == 0).float().mean()) == pytest.approx(sparsity, abs=1 / m.weight.numel())


def test_masks_hold_during_fine_tuning(digits, trained_mlp):
    pruned = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.8,finetune_epochs=3,lr=0.01"])
    assert sparsity_of(pruned.module) == pytest.approx(0.8, abs=1e-3)
    # fine-tuning changed the surviving weights
    before = torch.cat([m.weight.flatten() for _, m in prunable_weights(trained_mlp.module)])
    after = torch.cat([m.weight.flatten() for _, m in prunable_weights(pruned.module)])
    kept = after != 0
    assert not torch.equal(before[kept], after[kept])


def test_global_scope_prunes_small_layers_differently():
    layers = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    with torch.no_grad():
        layers[0].weight.fill_(0.01)
        layers[1].weight.copy_(torch.arange(16.0).reshape(4, 4) + 1)
    masks = magnitude_masks(layers, 0.5, "global")
    assert masks["0"].sum() == 0  # all of the small layer goes first
    assert masks["1"].sum() == 16
    masks = magnitude_masks(layers, 0.5, "layer")
    assert masks["0"].sum() == 8 and masks["1"].sum() == 8
