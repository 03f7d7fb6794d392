"""Packed weights: a quantized weight is stored as its codes, and loads back to identical outputs."""

import pytest
import torch
from torch.nn.utils import parametrize

from wattless.errors import ArtifactError
from wattless.io import WattlessModel, load, packed_state, save
from wattless.packed import AffineWeight, CodebookWeight, packed_bits


def quantize_layer(layer, bits, per_channel):
    w = layer.weight.detach()
    lo = w.amin(dim=1) if per_channel else w.min()
    hi = w.amax(dim=1) if per_channel else w.max()
    scale = (hi - lo) / (2**bits - 1)
    view = scale.reshape(-1, 1) if per_channel else scale
    offset_view = lo.reshape(-1, 1) if per_channel else lo
    codes = torch.round((w - offset_view) / view).clamp(0, 2**bits - 1).to(torch.int32)
    parametrize.register_parametrization(layer, "weight", AffineWeight(codes, bits, scale, lo))


@pytest.fixture
def model(trained_mlp):
    import copy

    return WattlessModel(copy.deepcopy(trained_mlp.module), dict(trained_mlp.meta))


@pytest.mark.parametrize("bits, per_channel", [(2, True), (4, False), (8, True), (13, False)])
def test_affine_round_trip_is_exact_and_small(tmp_path, model, digits, bits, per_channel):
    dense_size = save(model, tmp_path / "dense.wlz")
    quantize_layer(model.module[1], bits, per_channel)
    x = torch.as_tensor(digits.X_test[:40])
    with torch.no_grad():
        expected = model.module(x)
    size = save(model, tmp_path / "q.wlz")
    loaded = load(tmp_path / "q.wlz")
    with torch.no_grad():
        assert torch.equal(loaded.module(x), expected)
    assert packed_bits(loaded.module) == {"1.weight": bits}
    first_layer_floats = 64 * 32 * 4
    if bits <= 4:  # 2048 codes of 2-4 bits instead of 8 KB of floats
        assert size < dense_size - first_layer_floats * (1 - bits / 32) * 0.8


def test_codebook_round_trip_per_tensor_and_per_channel(tmp_path, model, digits):
    w = model.module[1].weight.detach()
    table = torch.tensor([-0.3, -0.05, 0.05, 0.3])
    codes = (w.unsqueeze(-1) - table).abs().argmin(dim=-1).to(torch.int32)
    parametrize.register_parametrization(model.module[1], "weight", CodebookWeight(codes, 2, table))
    rows = torch.stack([table * (1 + i / 100) for i in range(10)])
    out_codes = (model.module[3].weight.detach().unsqueeze(-1) - rows.unsqueeze(1)).abs().argmin(-1).to(torch.int32)
    parametrize.register_parametrization(model.module[3], "weight", CodebookWeight(out_codes, 2, rows))
    x = torch.as_tensor(digits.X_test[:40])
    with torch.no_grad():
        expected = model.module(x)
    save(model, tmp_path / "c.wlz")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "c.wlz").module(x), expected)


def test_codes_are_stored_bit_packed(model):
    quantize_layer(model.module[1], 3, True)
    tensors, encodings, described = packed_state(model.module)
    assert "1.weight" not in tensors
    assert encodings["packed.1.weight.codes"] == ("bitpack", {"bits": 3})
    assert described["1.weight"] == {"kind": "affine", "info": {"bits": 3}, "shape": [32, 64]}


def test_invalid_packed_weights_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        AffineWeight(torch.tensor([[0, 4]]), 2, torch.tensor(1.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="codebook"):
        CodebookWeight(torch.tensor([[0, 3]]), 2, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="per output channel"):
        AffineWeight(torch.zeros(3, 2, dtype=torch.int32), 2, torch.ones(2), torch.tensor(0.0))


def test_tampered_packed_table_is_an_artifact_error(tmp_path, model):
    from wattless.artifact import read_artifact, write_artifact

    quantize_layer(model.module[1], 4, True)
    save(model, tmp_path / "q.wlz")
    tensors, meta = read_artifact(tmp_path / "q.wlz")
    for bad in ({"1.weight": {"kind": "affine", "info": {"bits": 2}, "shape": [32, 64]}},
                {"1.weight": {"kind": "evil", "info": {"bits": 4}, "shape": [32, 64]}},
                {"1.weight": {"kind": "affine", "info": {"bits": 4}, "shape": [64, 32]}}, {}, []):
        write_artifact(tmp_path / "t.wlz", tensors, {**meta, "packed": bad})
        with pytest.raises(ArtifactError):
            load(tmp_path / "t.wlz")
