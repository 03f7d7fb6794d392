"""Mixed precision: the measured sensitivity table, budgets kept, bad budgets refused."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import wattless
from wattless.api import apply_steps
from wattless.data import Dataset
from wattless.errors import ConfigError, DataError
from wattless.packed import RowAffineWeight, packed_bits
from wattless.techniques import Context, make_config
from wattless.techniques.quantize._rows import _fan_out_works, damage_function, row_damage
from wattless.techniques.quantize.mixed import plan_bit_widths, plan_channel_bit_widths
from wattless.techniques.quantize.ptq import quantize_weight


@pytest.fixture(scope="module")
def mlp3(digits):
    return wattless.train("mlp", digits, model_kwargs={"hidden": [64, 32]}, epochs=8, lr=1e-2, seed=0)


@pytest.fixture(scope="module")
def plan3(digits, mlp3):
    """The 3-bit plan, measured once: (config, allocation)."""
    cfg = make_config("quantize.mixed", {"budget_bits": 3})
    return cfg, plan_bit_widths(mlp3.module, cfg, Context(dataset=digits))


def test_sensitivity_table_is_measured_per_layer_and_bits(plan3):
    _, plan = plan3
    assert plan.layers == ["1", "3", "5"] and plan.sizes == [64 * 64, 32 * 64, 10 * 32]
    assert plan.sensitivity.shape == (3, 5) and np.isfinite(plan.sensitivity).all()
    assert (plan.sensitivity[:, 0] > plan.sensitivity[:, -1]).all()  # 2 bits hurt more than 8, in every layer


def test_mixed_model_keeps_the_average_bit_budget(digits, mlp3, plan3):
    cfg, plan = plan3
    assert plan.mean() <= 3
    assert plan.estimated_damage() <= plan.estimated_damage({name: 3 for name in plan.layers})
    model = apply_steps(mlp3, digits, [("quantize.mixed", cfg)], seed=0)
    assert packed_bits(model.module) == {f"{name}.weight": bits for name, bits in plan.chosen.items()}
    with torch.no_grad():
        assert torch.isfinite(model.module(torch.as_tensor(digits.X_test[:10]))).all()


def test_output_sensitivity_is_never_negative(digits, mlp3):
    cfg = make_config("quantize.mixed", {"budget_bits": 3, "sensitivity": "output", "samples": 200})
    plan = plan_bit_widths(mlp3.module, cfg, Context(dataset=digits))
    assert (plan.sensitivity > 0).all() and (plan.sensitivity[:, 0] > plan.sensitivity[:, -1]).all()
    assert plan.mean() <= 3


def test_byte_budget_counts_packed_code_bytes(digits, mlp3):
    cfg = make_config("quantize.mixed", {"budget_bytes": 2500, "choices": [2, 4, 8], "samples": 200})
    assert cfg.budget_bits is None
    plan = plan_bit_widths(mlp3.module, cfg, Context(dataset=digits))
    assert sum(-(-n * plan.chosen[name] // 8) for name, n in zip(plan.layers, plan.sizes, strict=True)) <= 2500
    with pytest.raises(ConfigError, match="budget_bytes=1000 is below the smallest choice"):
        plan_bit_widths(mlp3.module, make_config("quantize.mixed", {"budget_bytes": 1000}), Context(dataset=digits))


@pytest.mark.parametrize("fields, message", [
    ({"budget_bits": 4, "budget_bytes": 1000}, "exactly one"),
    ({"budget_bits": None}, "exactly one"),
    ({"budget_bits": 1.5}, "below the smallest choice"),
    ({"choices": [0, 4]}, "1 to 16"),
    ({"choices": [4, 17]}, "1 to 16"),
    ({"choices": []}, "1 to 16"),
])
def test_bad_budgets_and_choices_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quantize.mixed", fields)


def test_no_validation_rows_is_a_data_error(digits, mlp3):
    empty = Dataset(digits.name, digits.task, digits.X_train, digits.y_train, digits.X_val[:0], digits.y_val[:0],
                    digits.X_test, digits.y_test, digits.classes)
    with pytest.raises(DataError, match="no validation rows"):
        plan_bit_widths(mlp3.module, make_config("quantize.mixed"), Context(dataset=empty))


@pytest.fixture(scope="module")
def rows3(digits, mlp3):
    """The 3-bit plan with one width per output channel, measured once: (config, allocation)."""
    cfg = make_config("quantize.mixed", {"budget_bits": 3, "unit": "channel"})
    return cfg, plan_channel_bit_widths(mlp3.module, cfg, Context(dataset=digits))


def test_channel_plan_keeps_the_average_bit_budget_exactly(digits, mlp3, rows3):
    cfg, plan = rows3
    weights = 64 * 64 + 32 * 64 + 10 * 32
    assert plan.layers == ["1", "3", "5"] and plan.row_sizes == [64, 64, 32]
    assert {name: table.shape for name, table in plan.sensitivity.items()} == {"1": (64, 5), "3": (32, 5), "5": (10, 5)}
    assert plan.code_bits() <= 3 * weights and plan.mean() <= 3
    uniform = {name: [3] * len(widths) for name, widths in plan.chosen.items()}
    assert plan.estimated_damage() <= plan.estimated_damage(uniform)
    model = apply_steps(mlp3, digits, [("quantize.mixed", cfg)], seed=0)
    stored_bits = 0
    for name, widths in plan.chosen.items():
        weight = model.module.get_submodule(name).parametrizations.weight[-1]
        assert isinstance(weight, RowAffineWeight) and weight.row_bits.tolist() == widths
        assert set(widths) <= set(cfg.choices)
        stored_bits += int(weight.row_bits.long().sum()) * weight.codes[0].numel()
    assert stored_bits == plan.code_bits() <= 3 * weights
    with torch.no_grad():
        assert torch.isfinite(model.module(torch.as_tensor(digits.X_test[:10]))).all()


def test_channel_sensitivity_defaults_to_the_output_change(rows3):
    cfg, plan = rows3
    assert cfg.sensitivity == "output"
    assert make_config("quantize.mixed", {"unit": "channel", "sensitivity": "loss"}).sensitivity == "loss"
    assert make_config("quantize.mixed").sensitivity == "loss"
    for table in plan.sensitivity.values():  # never negative; 2 bits hurt more than 8 on average
        assert (table >= 0).all() and table[:, 0].mean() > table[:, -1].mean()


def test_channel_byte_budget_counts_padded_code_parts(digits, mlp3):
    cfg = make_config("quantize.mixed", {"budget_bytes": 2500, "unit": "channel", "choices": [2, 4, 8], "samples": 200})
    plan = plan_channel_bit_widths(mlp3.module, cfg, Context(dataset=digits))
    stored = sum(-(-widths.count(b) * size * b // 8) for widths, size in
                 ((plan.chosen[name], size) for name, size in zip(plan.layers, plan.row_sizes, strict=True))
                 for b in set(widths))
    assert stored <= 2500
    with pytest.raises(ConfigError, match="budget_bytes=1000 is below the smallest choice"):
        plan_channel_bit_widths(mlp3.module, make_config("quantize.mixed", {"budget_bytes": 1000, "unit": "channel"}),
                                Context(dataset=digits))


@pytest.mark.parametrize("fields", [{"landmarks": "histogram"}, {"method": "stochastic"}, {"granularity": "tensor"}])
def test_channel_unit_needs_the_uniform_per_channel_grid(fields):
    with pytest.raises(ConfigError, match="unit=channel needs the uniform per-channel grid"):
        make_config("quantize.mixed", {"unit": "channel", **fields})


class Residual(nn.Module):
    """A skip connection around the first layer: its fanned-out output no longer fits the batch of the skip."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)


@pytest.mark.parametrize("measure", ["loss", "output"])
@pytest.mark.parametrize("residual", [False, True])
def test_row_damage_equals_quantizing_that_row_alone(digits, mlp3, measure, residual):
    torch.manual_seed(0)
    model = Residual().eval() if residual else mlp3.module.eval()
    layer = "fc1" if residual else "3"
    X, y = torch.as_tensor(digits.X_val[:100]), torch.as_tensor(digits.y_val[:100], dtype=torch.long)
    weight = model.get_submodule(layer).weight.detach()
    quantized = [quantize_weight(weight, b, make_config("quantize.ptq"), torch.Generator()).decode() for b in (2, 4)]
    with torch.inference_mode():
        reference = model(X)
        assert _fan_out_works(model, model.get_submodule(layer), X, reference) is not residual  # else: one by one
        table = row_damage(model, layer, quantized, X, damage_function(reference, y, "classification", measure),
                           reference)
        for c, j in [(0, 0), (5, 1), (len(weight) - 1, 0)]:
            trial = copy.deepcopy(model)
            trial.get_submodule(layer).weight[c] = quantized[j][c]
            outputs = trial(X)
            expected = (torch.nn.functional.cross_entropy(outputs, y) - torch.nn.functional.cross_entropy(reference, y)
                        if measure == "loss" else ((outputs - reference) ** 2).mean())
            assert table[c, j] == pytest.approx(float(expected), rel=1e-3, abs=1e-6)
    assert torch.equal(model.get_submodule(layer).weight, weight)  # left as it was
