"""quantize.ptq on a trained model: values on the grid, accuracy kept, packed files, overrides and clear errors."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from wattless.api import apply_steps
from wattless.errors import ConfigError, ModelError
from wattless.io import WattlessModel, load, save
from wattless.packed import AffineWeight, CodebookWeight, PackedWeight, RowAffineWeight, packed_bits
from wattless.techniques import Context, make_config
from wattless.techniques.quantize._grids import (
    histogram_landmarks,
    normal_landmarks,
    uniform_landmarks,
    value_range,
)
from wattless.techniques.quantize.ptq import PTQConfig, quantize_ptq
from wattless.train import evaluate

LAYERS = ("1", "3")  # the two Linear layers of the fixture MLP (64-32-10)
METHODS = [("midrise", "uniform"), *itertools.product(["nearest", "stochastic"], ["uniform", "histogram", "normal"])]


def packed(model, layer):
    return model.module.get_submodule(layer).parametrizations.weight[-1]


def expected_landmarks(weight, bits, method, landmarks, granularity, symmetric):
    """The landmark set of each row, rebuilt from the float weight with the grid helpers: (C, L)."""
    rows = weight.reshape(weight.shape[0] if granularity == "channel" else 1, -1)
    lo, hi = value_range(rows, symmetric)
    if method == "midrise":
        width = (hi - lo) / 2**bits
        return torch.arange(2**bits)[None, :] * width[:, None] + (lo + width / 2)[:, None]
    if landmarks == "uniform":
        return uniform_landmarks(lo, hi, bits)
    return (histogram_landmarks if landmarks == "histogram" else normal_landmarks)(rows, 2**bits)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("method, landmarks", METHODS)
def test_weights_lie_on_at_most_2_to_the_bits_landmarks(digits, trained_mlp, method, landmarks, granularity):
    bits, symmetric = 3, granularity == "tensor"
    q = apply_steps(trained_mlp, digits, [f"quantize.ptq:bits={bits},method={method},landmarks={landmarks},"
                                          f"granularity={granularity},symmetric={symmetric}"])
    assert packed_bits(q.module) == {f"{layer}.weight": bits for layer in LAYERS}
    for layer in LAYERS:
        original = trained_mlp.module.get_submodule(layer).weight.detach()
        weight = q.module.get_submodule(layer).weight.detach()
        rows = weight.reshape(weight.shape[0] if granularity == "channel" else 1, -1)
        grid = expected_landmarks(original, bits, method, landmarks, granularity, symmetric)
        assert all(len(torch.unique(row)) <= 2**bits for row in rows)
        assert bool(torch.isin(rows, grid).all()) if granularity == "tensor" else all(
            bool(torch.isin(row, grid_row).all()) for row, grid_row in zip(rows, grid, strict=True))
        kind = CodebookWeight if method != "midrise" and landmarks != "uniform" else AffineWeight
        assert isinstance(packed(q, layer), kind)
        assert torch.equal(q.module.get_submodule(layer).bias, trained_mlp.module.get_submodule(layer).bias)


@pytest.mark.parametrize("method, landmarks", METHODS)
def test_8_bit_ptq_keeps_accuracy_within_a_point(digits, trained_mlp, method, landmarks):
    before = evaluate(trained_mlp.module, digits.X_test, digits.y_test, digits.task)["accuracy"]
    q = apply_steps(trained_mlp, digits, [f"quantize.ptq:bits=8,method={method},landmarks={landmarks}"])
    after = evaluate(q.module, digits.X_test, digits.y_test, digits.task)["accuracy"]
    assert after >= before - 0.01


@pytest.mark.parametrize("step", ["method=midrise,granularity=tensor", "method=stochastic",
                                  "landmarks=histogram", "landmarks=normal,granularity=tensor"])
def test_save_load_gives_identical_outputs(tmp_path, digits, trained_mlp, step):
    q = apply_steps(trained_mlp, digits, [f"quantize.ptq:bits=4,{step}"])
    x = torch.as_tensor(digits.X_test[:50])
    save(q, tmp_path / "q.wlz")
    loaded = load(tmp_path / "q.wlz", keep_parametrizations=True)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), q.module(x))
    assert packed_bits(loaded.module) == packed_bits(q.module)


def test_packed_file_shrinks_with_the_bits(tmp_path, digits, trained_mlp):
    sizes = [save(trained_mlp, tmp_path / "fp32.wlz")]
    for bits in (8, 4, 2):
        sizes.append(save(apply_steps(trained_mlp, digits, [f"quantize.ptq:bits={bits}"]), tmp_path / f"{bits}.wlz"))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4, sizes


def test_layer_bits_and_skip_take_effect(digits, trained_mlp):
    q = apply_steps(trained_mlp, digits, ["quantize.ptq:bits=6,layer_bits={3: 2}"])  # names may read as numbers
    assert packed_bits(q.module) == {"1.weight": 6, "3.weight": 2}
    assert len(torch.unique(q.module[3].weight)) <= 4 * 10  # 4 values per output channel
    q = apply_steps(trained_mlp, digits, ["quantize.ptq:bits=2,skip=[1]"])
    assert packed_bits(q.module) == {"3.weight": 2}
    assert not parametrize.is_parametrized(q.module[1])
    assert torch.equal(q.module[1].weight, trained_mlp.module[1].weight)


def test_stochastic_codes_follow_the_seed(digits, trained_mlp):
    step = "quantize.ptq:bits=2,method=stochastic,landmarks=histogram"
    first, same, other = (apply_steps(trained_mlp, digits, [step], seed=seed) for seed in (3, 3, 4))
    assert torch.equal(packed(first, "1").codes, packed(same, "1").codes)
    assert not torch.equal(packed(first, "1").codes, packed(other, "1").codes)


def test_quantizes_on_top_of_a_pruning_mask(tmp_path, digits, trained_mlp):
    q = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.5,finetune_epochs=0", "quantize.ptq:bits=4"])
    chain = q.module[1].parametrizations.weight
    assert len(chain) == 2 and isinstance(chain[-1], PackedWeight)
    x = torch.as_tensor(digits.X_test[:20])
    save(q, tmp_path / "pq.wlz")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "pq.wlz").module(x), q.module(x))


@pytest.mark.parametrize("method, landmarks", [("midrise", "uniform"), ("nearest", "uniform"),
                                               ("stochastic", "uniform")])
def test_all_equal_weights_decode_to_their_constant(digits, method, landmarks):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.fill_(0.25)
        model[1].weight.zero_()
    cfg = PTQConfig(bits=4, method=method, landmarks=landmarks, granularity="tensor", symmetric=False)
    quantize_ptq(model, cfg, Context(dataset=digits))
    assert torch.equal(model[0].weight, torch.full((4, 3), 0.25))
    assert torch.equal(model[1].weight, torch.zeros(2, 4))


@pytest.mark.parametrize("step, error, message", [
    ("quantize.ptq:bits=0", ConfigError, "bits: Input should be greater than or equal to 1"),
    ("quantize.ptq:bits=17", ConfigError, "bits: Input should be less than or equal to 16"),
    ("quantize.ptq:method=round", ConfigError, "method: Input should be 'midrise', 'nearest' or 'stochastic'"),
    ("quantize.ptq:landmarks=kmeans", ConfigError, "landmarks: Input should be 'uniform', 'histogram' or 'normal'"),
    ("quantize.ptq:layer_bits={'3': 0}", ConfigError, "layer_bits.3: Input should be greater than or equal to 1"),
    ("quantize.ptq:layer_bits={fc9: 4}", ConfigError, r"layer_bits names unknown layers \['fc9'\].*'1', '3'"),
    ("quantize.ptq:skip=[fc9]", ConfigError, r"skip names unknown layers \['fc9'\].*'1', '3'"),
    ("quantize.ptq:skip=[3],layer_bits={3: 4}", ConfigError, r"layers \['3'\] are in both skip and layer_bits"),
    ("quantize.ptq:landmarks=histogram,bits=16", ModelError,
     "layer '1' has .* distinct weights, fewer than the 65536 histogram landmarks of 16 bits; use at most 11 bits"),
    ("quantize.ptq:landmarks=normal,layer_bits={'3': 9}", ModelError, "layer '3' has .* 512 normal landmarks"),
])
def test_bad_requests_are_one_clear_error(digits, trained_mlp, step, error, message):
    with pytest.raises(error, match=message):
        apply_steps(trained_mlp, digits, [step])


def test_nan_weights_are_refused(digits, trained_mlp):
    broken = WattlessModel(nn.Sequential(nn.Linear(64, 10)), trained_mlp.meta)
    with torch.no_grad():
        broken.module[0].weight[0, 0] = float("nan")
    with pytest.raises(ModelError, match="layer '0' holds NaN"):
        apply_steps(broken, digits, ["quantize.ptq"])


ROW_BITS = {"1": [1 + (7 * c) % 9 for c in range(32)], "3": [2, 16, 3, 3, 8, 1, 4, 5, 2, 6]}  # 64-32-10 MLP


@pytest.mark.parametrize("method", ["nearest", "midrise"])
def test_channel_bits_give_each_row_its_own_width(tmp_path, digits, trained_mlp, method):
    cfg = make_config("quantize.ptq", {"method": method, "channel_bits": ROW_BITS})
    q = apply_steps(trained_mlp, digits, [("quantize.ptq", cfg)])
    uniform = {b: apply_steps(trained_mlp, digits, [f"quantize.ptq:bits={b},method={method}"])
               for b in {b for widths in ROW_BITS.values() for b in widths}}
    assert packed_bits(q.module) == {"1.weight": 9, "3.weight": 16}
    for layer, widths in ROW_BITS.items():
        weight = packed(q, layer)
        assert isinstance(weight, RowAffineWeight) and weight.row_bits.tolist() == widths
        assert weight.mean_bits == pytest.approx(sum(widths) / len(widths))
        rows = q.module.get_submodule(layer).weight.detach()
        for c, bits in enumerate(widths):
            assert len(torch.unique(rows[c])) <= 2**bits
            # the same range, grid and codes as the uniform per-channel path at that width
            assert torch.equal(rows[c], uniform[bits].module.get_submodule(layer).weight[c])
    x = torch.as_tensor(digits.X_test[:50])
    save(q, tmp_path / "rows.wlz")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "rows.wlz").module(x), q.module(x))


def make_step(name, fields):
    return (name, make_config(name, fields))


def test_channel_bits_for_one_layer_leave_the_others_to_bits(digits, trained_mlp):
    q = apply_steps(trained_mlp, digits, [make_step("quantize.ptq", {"bits": 4, "channel_bits": {"3": [2] * 10}})])
    assert isinstance(packed(q, "1"), AffineWeight) and packed_bits(q.module) == {"1.weight": 4, "3.weight": 2}


@pytest.mark.parametrize("fields, message", [
    ({"method": "stochastic"}, "channel_bits works with method=nearest,landmarks=uniform or method=midrise"),
    ({"landmarks": "histogram"}, "not method=nearest,landmarks=histogram; use one of those, or layer_bits"),
    ({"granularity": "tensor"}, "channel_bits needs granularity=channel"),
    ({"channel_bits": {"3": [0] * 10}}, "channel_bits.3.0: Input should be greater than or equal to 1"),
    ({"channel_bits": {"3": [17] * 10}}, "channel_bits.3.0: Input should be less than or equal to 16"),
])
def test_channel_bits_only_on_the_uniform_per_channel_grid(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quantize.ptq", {"channel_bits": {"3": [4] * 10}, **fields})


@pytest.mark.parametrize("fields, message", [
    ({"channel_bits": {"3": [4] * 9}}, r"channel_bits gives layer '3' 9 widths; give one per output channel \(10\)"),
    ({"channel_bits": {"fc9": [4]}}, r"channel_bits names unknown layers \['fc9'\]"),
    ({"channel_bits": {"3": [4] * 10}, "layer_bits": {"3": 2}}, r"\['3'\] are in both layer_bits and channel_bits"),
    ({"channel_bits": {"3": [4] * 10}, "skip": ["3"]}, r"\['3'\] are in both skip and channel_bits"),
])
def test_channel_bits_must_fit_the_model(digits, trained_mlp, fields, message):
    with pytest.raises(ConfigError, match=message):
        apply_steps(trained_mlp, digits, [make_step("quantize.ptq", fields)])
