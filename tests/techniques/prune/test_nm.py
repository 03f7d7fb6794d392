"""N:M sparsity: the pattern holds exactly (also after fine-tuning), groups run along the input dimension, layers
that cannot be grouped are skipped with a warning, and bad n, m are one clear error."""

import pytest
import torch

from wattless.api import apply_steps
from wattless.errors import ConfigError
from wattless.techniques import Context, get_technique, make_config
from wattless.techniques.prune.magnitude import prunable_weights
from wattless.techniques.prune.nm import nm_mask


def groups(weight, m):
    """Groups of m consecutive weights along dimension 1, one row each."""
    return weight.detach().movedim(1, -1).reshape(-1, m)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (4, 8)])
def test_pattern_holds_exactly_after_fine_tuning(digits, trained_mlp, n, m):
    pruned = apply_steps(trained_mlp, digits, [f"prune.nm:n={n},m={m},finetune_epochs=2,lr=0.01"])
    for (_, before), (_, after) in zip(prunable_weights(trained_mlp.module), prunable_weights(pruned.module),
                                       strict=True):
        assert ((groups(after.weight, m) != 0).sum(1) == n).all()
        kept = after.weight != 0
        assert not torch.equal(before.weight[kept], after.weight.detach()[kept])  # fine-tuned, masks held


def test_keeps_the_largest_of_each_group_along_input_channels():
    weight = torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 5.0, -5.0, 0.0]])
    assert nm_mask(weight, 2, 4).tolist() == [[0, 1, 1, 0, 1, 1, 0, 0]]  # ties: the first ones
    conv = torch.randn(3, 8, 2, 2)
    mask = nm_mask(conv, 2, 4)
    assert (mask.sum(1) == 4).all()  # two of every four input channels, at each output channel and position
    for position in range(4):
        kernel = conv.flatten(2)[..., position].abs()
        chosen = mask.flatten(2)[..., position].reshape(3, 2, 4)
        top_two = kernel.reshape(3, 2, 4).topk(2, dim=2).values.sum(2)
        assert torch.allclose((kernel.reshape(3, 2, 4) * chosen).sum(2), top_two)


def test_layers_that_cannot_be_grouped_are_skipped_with_a_warning(digits):
    model = torch.nn.Sequential(torch.nn.Linear(64, 6), torch.nn.ReLU(), torch.nn.Linear(6, 10))
    with pytest.warns(UserWarning, match=r"not divisible by 4: 2 \(6 inputs\)"):
        get_technique("prune.nm").apply(model, make_config("prune.nm", {"finetune_epochs": 0}), Context(digits))
    assert float((model[0].weight == 0).float().mean()) == 0.5
    assert (model[2].weight != 0).all()


@pytest.mark.parametrize("step, message", [
    ("prune.nm:n=4,m=4", "n=4 must be smaller than m=4"),
    ("prune.nm:n=0", "n"),
    ("prune.nm:m=128", "no layer has an input size divisible by m=128"),
])
def test_bad_input_is_one_clear_error(digits, trained_mlp, step, message):
    with pytest.raises(ConfigError, match=message):
        apply_steps(trained_mlp, digits, [step])
