"""Multi-point quantization: the proven error bound, the reachable set, exact files, importance allocation."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wattless.api import apply_steps
from wattless.errors import ArtifactError, ConfigError
from wattless.io import load, packed_state, save
from wattless.packed import packed_bits
from wattless.techniques import Context, make_config
from wattless.techniques.quantize.multipoint import (
    MultipointWeight,
    grid_bits,
    multipoint_approximation,
    plan_points,
)

weights = arrays("float32", st.tuples(st.integers(1, 6), st.integers(1, 9)),
                 elements=st.floats(-3, 3, width=32, allow_subnormal=False))


def decoded(codes, scales, steps, points):
    return MultipointWeight(codes[:points], grid_bits(steps), steps, scales[:points]).decode()


@settings(max_examples=60, deadline=None)
@given(weights, st.sampled_from([1, 2, 3, 4, 7, 8, 15]))
def test_worst_error_shrinks_by_half_a_step_per_point(w, steps):
    """max|w - w_p| <= s_p * eps/2 <= (eps/2)^p * max|w|, so it never grows with more points."""
    w = torch.as_tensor(w)
    codes, scales = multipoint_approximation(w, 4, steps)
    eps, top, tol = 2 / steps, float(w.abs().max()), 1e-5 * (float(w.abs().max()) + 1e-30)
    errors = [float((w - decoded(codes, scales, steps, p)).abs().max()) for p in range(1, 5)]
    for p, error in enumerate(errors, start=1):
        assert error <= float(scales[p - 1]) * eps / 2 + tol
        assert error <= (eps / 2) ** p * top + tol
    assert all(later <= earlier + tol for earlier, later in itertools.pairwise(errors))


@settings(max_examples=40, deadline=None)
@given(weights, st.sampled_from([2, 4, 8]))
def test_every_weight_error_shrinks_when_the_grid_holds_zero(w, steps):
    w = torch.as_tensor(w)
    codes, scales = multipoint_approximation(w, 3, steps)
    errors = [(w - decoded(codes, scales, steps, p)).abs() for p in range(1, 4)]
    for earlier, later in itertools.pairwise(errors):
        assert (later <= earlier + 1e-6).all()


def test_decoded_values_lie_on_the_reachable_set():
    torch.manual_seed(0)
    w, steps = torch.randn(40, 30), 8
    codes, scales = multipoint_approximation(w, 2, steps)
    assert codes.shape == (2, 40, 30) and codes.min() >= 0 and codes.max() <= steps
    one_point = decoded(codes, scales, steps, 1)
    assert set(one_point.unique().tolist()) <= set((scales[0] * torch.linspace(-1, 1, steps + 1)).tolist())
    reachable = (scales[0] * torch.linspace(-1, 1, steps + 1)).reshape(-1, 1) + \
        scales[1] * torch.linspace(-1, 1, steps + 1)
    assert decoded(codes, scales, steps, 2).unique().numel() <= reachable.numel()
    assert torch.isclose(decoded(codes, scales, steps, 2).reshape(-1, 1), reachable.reshape(1, -1)).any(1).all()


def test_round_trip_is_exact_and_files_grow_with_points(tmp_path, digits, trained_mlp):
    x = torch.as_tensor(digits.X_test[:50])
    sizes = []
    for points in (1, 2, 3):
        model = apply_steps(trained_mlp, digits, [f"quantize.multipoint:points={points},epsilon=0.25"])
        sizes.append(save(model, tmp_path / f"p{points}.wlz"))
        loaded = load(tmp_path / f"p{points}.wlz", keep_parametrizations=True)
        with torch.no_grad():
            assert torch.equal(loaded.module(x), model.module(x))
        assert packed_bits(loaded.module) == {"1.weight": 4, "3.weight": 4}  # 9 grid values: 4 bits per point
    assert sizes[0] < sizes[1] < sizes[2]
    _, encodings, described = packed_state(model.module)
    assert described["1.weight"] == {"kind": "multipoint", "info": {"bits": 4, "steps": 8}, "shape": [32, 64]}
    assert encodings["packed.1.weight.codes"] == ("bitpack", {"bits": 4})


def test_tampered_multipoint_table_is_an_artifact_error(tmp_path, digits, trained_mlp):
    from wattless.artifact import read_artifact, write_artifact

    save(apply_steps(trained_mlp, digits, ["quantize.multipoint"]), tmp_path / "m.wlz")
    tensors, meta = read_artifact(tmp_path / "m.wlz")
    for info in ({"bits": 4, "steps": 16}, {"bits": 4, "steps": "8"}, {"bits": 4}, {"bits": 3, "steps": 8}):
        entry = {**meta["packed"]["1.weight"], "info": info}
        write_artifact(tmp_path / "t.wlz", tensors, {**meta, "packed": {**meta["packed"], "1.weight": entry}})
        with pytest.raises(ArtifactError):
            load(tmp_path / "t.wlz")


def test_more_points_approach_the_float_model(digits, trained_mlp):
    x = torch.as_tensor(digits.X_val)
    with torch.no_grad():
        reference = trained_mlp.module(x)
        gaps = [float((apply_steps(trained_mlp, digits, [f"quantize.multipoint:points={p},epsilon=0.5"])
                       .module(x) - reference).abs().max()) for p in (1, 2, 4)]
    assert gaps[0] > gaps[1] > gaps[2]


@pytest.fixture(scope="module")
def mlp3(digits):
    import wattless

    return wattless.train("mlp", digits, model_kwargs={"hidden": [64, 32]}, epochs=8, lr=1e-2, seed=0)


def test_importance_fills_the_average_budget_and_beats_uniform_on_its_estimate(digits, mlp3):
    cfg = make_config("quantize.multipoint", {"points": 2, "max_points": 4, "allocation": "importance"})
    plan = plan_points(mlp3.module, cfg, Context(dataset=digits))
    assert plan.sensitivity.shape == (3, 4)
    assert (np.diff(plan.sensitivity, axis=1) < 0).all()  # output damage falls with every extra point
    assert plan.mean() <= 2
    assert plan.estimated_damage() <= plan.estimated_damage({name: 2 for name in plan.layers})
    for name, size in zip(plan.layers, plan.sizes, strict=True):  # as damage falls, no point is left unspent
        if plan.chosen[name] < 4:
            assert plan.mean() + size / sum(plan.sizes) > 2
    model = apply_steps(mlp3, digits, [("quantize.multipoint", cfg)])
    assert {name: weight.points for name, weight in _packed(model.module).items()} == plan.chosen


def _packed(module):
    return {name: m.parametrizations.weight[-1] for name, m in module.named_modules() if hasattr(m, "parametrizations")}


@pytest.mark.parametrize("fields, message", [
    ({"epsilon": 0.3}, "epsilon"),
    ({"epsilon": 0}, "epsilon"),
    ({"points": 9}, "points"),
    ({"points": 5, "allocation": "importance"}, "max_points=4 is below points=5"),
])
def test_bad_configs_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quantize.multipoint", fields)


def test_invalid_multipoint_weights_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        MultipointWeight(torch.tensor([[0, 9]]), 4, 8, torch.ones(1))
    with pytest.raises(ValueError, match="one scale per point"):
        MultipointWeight(torch.zeros(2, 3, dtype=torch.int32), 4, 8, torch.ones(3))
    with pytest.raises(ValueError, match="does not fit"):
        MultipointWeight(torch.zeros(2, 3, dtype=torch.int32), 3, 8, torch.ones(2))
