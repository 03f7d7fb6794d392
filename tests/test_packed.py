"""Packed weights: a quantized weight is stored as its codes, and loads back to identical outputs."""

import pytest
import torch
from torch.nn.utils import parametrize

from wattless.errors import ArtifactError
from wattless.io import WattlessModel, load, packed_state, save
from wattless.packed import AffineWeight, CodebookWeight, RowAffineWeight, packed_bits


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
    loaded = load(tmp_path / "q.wlz", keep_parametrizations=True)
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


def test_codes_of_pruned_weights_are_stored_range_coded_when_smaller(tmp_path, model, digits, monkeypatch):
    from wattless.artifact import read_encodings
    from wattless.artifact.encodings import CODE_ENCODINGS

    layer = model.module[1]
    kept = layer.weight.detach().abs() > layer.weight.detach().abs().quantile(0.9)  # 90% pruned
    codebook = torch.tensor([0.0, -0.2, -0.1, 0.1, 0.2])
    codes = torch.bucketize(layer.weight.detach(), torch.tensor([-0.15, 0.0, 0.15])) + 1
    parametrize.register_parametrization(layer, "weight", CodebookWeight(codes * kept, 3, codebook))
    size = save(model, tmp_path / "entropy.wlz")
    assert read_encodings(tmp_path / "entropy.wlz")["packed.1.weight.codes"]["encoding"] == "entropy"
    x = torch.as_tensor(digits.X_test)
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "entropy.wlz").module(x), model.module(x))
    monkeypatch.delitem(CODE_ENCODINGS, "entropy")
    assert size < save(model, tmp_path / "without.wlz")


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


def random_rows(shape, widths, seed=0):
    """Codes of a random RowAffineWeight: row c drawn in [0, 2^widths[c])."""
    generator = torch.Generator().manual_seed(seed)
    row_bits = torch.tensor(widths, dtype=torch.uint8)
    limits = (2 ** row_bits.long()).reshape(-1, *([1] * (len(shape) - 1)))
    codes = (torch.rand(shape, generator=generator) * limits).long().clamp(max=limits - 1)
    scale, offset = torch.rand(shape[0], generator=generator) / 7, -torch.rand(shape[0], generator=generator)
    return RowAffineWeight(codes, row_bits, scale, offset)


def stored_and_read(tmp_path, weight):
    """``weight``'s parts written to a file with their encodings and read back."""
    from wattless.artifact import read_artifact, write_artifact

    parts, encodings, info = weight.pack()
    write_artifact(tmp_path / "rows.wlz", parts, {"info": info}, encodings=encodings)
    tensors, meta = read_artifact(tmp_path / "rows.wlz")
    return tensors, meta["info"]


@pytest.mark.parametrize("shape, widths", [
    ((7, 13), [1, 3, 16, 3, 5, 1, 13]),  # odd row length, widths that never fill a byte evenly
    ((5, 3, 3, 3), [2, 2, 7, 9, 2]),  # a conv weight: rows of 27 codes
    ((3, 1), [4, 4, 4]),  # one width only
])
def test_row_affine_round_trip_is_exact(tmp_path, shape, widths):
    weight = random_rows(shape, widths)
    assert weight.bits == max(widths) and weight.mean_bits == pytest.approx(sum(widths) / len(widths))
    tensors, info = stored_and_read(tmp_path, weight)
    assert set(tensors) == {"row_bits", "scale", "offset", *(f"codes_b{b}" for b in set(widths))}
    loaded = RowAffineWeight.unpack(tensors, info)
    assert torch.equal(loaded.codes, weight.codes) and torch.equal(loaded.row_bits, weight.row_bits)
    assert torch.equal(loaded.decode(), weight.decode())


def test_row_affine_decodes_like_per_channel_affine():
    weight = random_rows((6, 11), [3, 3, 3, 3, 3, 3])
    affine = AffineWeight(weight.codes, 3, weight.scale, weight.offset)
    assert torch.equal(weight.decode(), affine.decode())


def test_row_affine_model_round_trip(tmp_path, model, digits):
    layer = model.module[1]  # 32 rows of 64
    widths = [1 + c % 8 for c in range(32)]
    w = layer.weight.detach()
    lo, hi = w.amin(dim=1), w.amax(dim=1)
    row_bits = torch.tensor(widths, dtype=torch.uint8)
    scale = (hi - lo) / (2 ** row_bits.float() - 1)
    codes = torch.round((w - lo[:, None]) / scale[:, None]).clamp(min=0)
    codes = torch.minimum(codes, 2 ** row_bits.float()[:, None] - 1).to(torch.int32)
    parametrize.register_parametrization(layer, "weight", RowAffineWeight(codes, row_bits, scale, lo))
    x = torch.as_tensor(digits.X_test[:40])
    with torch.no_grad():
        expected = model.module(x)
    save(model, tmp_path / "rows.wlz")
    loaded = load(tmp_path / "rows.wlz", keep_parametrizations=True)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), expected)
    assert packed_bits(loaded.module) == {"1.weight": 8}
    _, encodings, described = packed_state(model.module)
    assert described["1.weight"] == {"kind": "affine-rows", "info": {"bits": 8}, "shape": [32, 64]}
    assert encodings["packed.1.weight.codes_b5"] == ("bitpack", {"bits": 5})


def tampered(parts, info):
    """Every way the parts or info below can be corrupted, as (description, parts, info)."""
    out_of_range = parts["codes_b2"].clone()
    out_of_range[0, 0] = 4
    one_row_short = {k: v for k, v in parts.items()}
    one_row_short["codes_b5"] = parts["codes_b5"][:-1]
    yield "missing part", {k: v for k, v in parts.items() if k != "codes_b5"}, info
    yield "extra part", {**parts, "codes_b9": parts["codes_b5"]}, info
    yield "codes out of range for their row", {**parts, "codes_b2": out_of_range}, info
    yield "rows miscounted", one_row_short, info
    yield "row shape differs", {**parts, "codes_b2": parts["codes_b2"][:, :-1]}, info
    yield "float codes", {**parts, "codes_b2": parts["codes_b2"].float()}, info
    yield "row_bits not uint8", {**parts, "row_bits": parts["row_bits"].long()}, info
    yield "row width 0", {**parts, "row_bits": torch.where(parts["row_bits"] == 2, 0, parts["row_bits"])}, info
    yield "row width 17", {**parts, "row_bits": torch.where(parts["row_bits"] == 5, 17, parts["row_bits"])}, info
    yield "scale too short", {**parts, "scale": parts["scale"][:-1]}, info
    yield "offset as a scalar", {**parts, "offset": parts["offset"][0]}, info
    yield "info bits not the widest row", parts, {"bits": 4}
    yield "extra info", parts, {**info, "steps": 3}
    yield "info not a mapping", parts, [5]


def test_tampered_row_affine_parts_are_refused(tmp_path):
    parts, _, info = random_rows((4, 9), [2, 5, 2, 5]).pack()
    assert RowAffineWeight.unpack(parts, info).bits == 5
    for what, bad_parts, bad_info in tampered(parts, info):
        with pytest.raises(ValueError):
            RowAffineWeight.unpack(bad_parts, bad_info)
            pytest.fail(f"accepted: {what}")


def test_invalid_row_affine_weights_are_refused():
    codes = torch.tensor([[0, 3], [1, 2]])
    with pytest.raises(ValueError, match="out of range"):
        RowAffineWeight(codes, torch.tensor([2, 1], dtype=torch.uint8), torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="one row per row_bits"):
        RowAffineWeight(codes, torch.tensor([2], dtype=torch.uint8), torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="one value per output channel"):
        RowAffineWeight(codes, torch.tensor([2, 2], dtype=torch.uint8), torch.tensor(1.0), torch.zeros(2))


def test_tampered_row_widths_in_a_model_file_are_an_artifact_error(tmp_path, model):
    from wattless.artifact import read_artifact, write_artifact

    layer = model.module[3]  # 10 rows of 32
    row_bits = torch.tensor([2, 6] * 5, dtype=torch.uint8)
    codes = torch.zeros(10, 32, dtype=torch.int32)
    codes[1] = 63
    parametrize.register_parametrization(layer, "weight", RowAffineWeight(codes, row_bits, torch.ones(10),
                                                                          torch.zeros(10)))
    save(model, tmp_path / "rows.wlz")
    tensors, meta = read_artifact(tmp_path / "rows.wlz")
    narrower = row_bits.clone()
    narrower[1] = 2  # its codes (63) no longer fit, and the 6-bit part holds a row too many
    write_artifact(tmp_path / "t.wlz", {**tensors, "packed.3.weight.row_bits": narrower}, meta)
    with pytest.raises(ArtifactError, match="packed weight '3.weight' is corrupt"):
        load(tmp_path / "t.wlz")
