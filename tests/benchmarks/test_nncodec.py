"""benchmarks/nncodec.py: code extraction, the entropy floor on hand-made codes, and the "not run" paths."""

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # benchmarks/ is a script folder

import nncodec as bench  # noqa: E402

from wattless.artifact.reader import read_stored_sizes  # noqa: E402
from wattless.io import WattlessModel, load, save  # noqa: E402
from wattless.packed import AffineWeight, CodebookWeight  # noqa: E402

CODEBOOK = torch.tensor([0.0, -0.3, -0.1, 0.1, 0.3])


def test_entropy_floor_of_hand_made_codes():
    half = bench.entropy_floor(np.array([[0, 1, 0, 2], [0, 1, 0, 2]]))  # K/numel = 1/2, values 1 and 2 alike
    assert half == {"mask": 1.0, "values": 0.5, "total": 1.5}  # 8 bits of positions, 4 bits of values
    one = bench.entropy_floor(np.array([0, 0, 0, 3, 0, 0, 0, 0]))
    assert one["mask"] == pytest.approx((24 - 7 * math.log2(7)) / 8)  # 8 * H(1/8) bits
    assert one["values"] == 0.0
    dense = bench.entropy_floor(np.array([1, 2, 3, 4]))  # no zero: no positions to code, 2 bits a value
    assert dense == {"mask": 0.0, "values": 1.0, "total": 1.0}
    assert bench.entropy_floor(np.zeros((3, 3), dtype=np.int32))["total"] == 0.0


def test_levels_rank_codes_by_value_with_zero_at_zero():
    codes = np.array([[0, 1, 2], [3, 4, 0]])
    assert bench.levels(codes, CODEBOOK.numpy()).tolist() == [[0, -2, -1], [1, 2, 0]]
    rows = np.array([[0.0, 0.5, -0.5], [0.2, 0.1, 0.3]])  # one codebook per output channel
    assert bench.levels(np.array([[0, 1, 2], [0, 1, 2]]), rows).tolist() == [[0, 1, -1], [1, 0, 2]]


def packed_model(trained_mlp):
    """The digits MLP with its first layer pruned (90%) and shared on CODEBOOK, its bias at 8 bits."""
    model = WattlessModel(copy.deepcopy(trained_mlp.module), dict(trained_mlp.meta))
    layer = model.module[1]
    weight = layer.weight.detach()
    kept = weight.abs() > weight.abs().quantile(0.9)
    codes = (torch.bucketize(weight, torch.tensor([-0.2, 0.0, 0.2])) + 1) * kept
    codes = torch.tensor([0, 1, 2, 3, 4])[codes]
    parametrize.register_parametrization(layer, "weight", CodebookWeight(codes.to(torch.int32), 3, CODEBOOK))
    bias = layer.bias.detach()
    scale, low = (bias.max() - bias.min()) / 255, bias.min()
    bias_codes = torch.round((bias - low) / scale).to(torch.int32)
    parametrize.register_parametrization(layer, "bias", AffineWeight(bias_codes, 8, scale, low))
    return model, codes, bias_codes


def test_extract_finds_the_codes_codebook_and_bias_codes(tmp_path, trained_mlp):
    model, codes, bias_codes = packed_model(trained_mlp)
    save(model, tmp_path / "m.wlz")
    layers = bench.extract(load(tmp_path / "m.wlz", keep_parametrizations=True))
    assert list(layers) == ["1"]
    assert np.array_equal(layers["1"]["codes"], codes.numpy())
    assert np.array_equal(layers["1"]["codebook"], CODEBOOK.numpy())
    assert np.array_equal(layers["1"]["bias_codes"], bias_codes.numpy())
    bench.write_npz(layers, tmp_path / "in.npz")
    with np.load(tmp_path / "in.npz", allow_pickle=False) as stored:
        assert sorted(stored.files) == ["b/1", "q/1", "w/1"]
        assert np.array_equal(stored["w/1"], CODEBOOK.numpy()[codes.numpy()])
        assert stored["q/1"].dtype == np.int32 and int(stored["q/1"].min()) == -2


def test_without_the_environment_it_says_how_to_build_it_and_still_reports_ours(tmp_path, trained_mlp):
    model, codes, _ = packed_model(trained_mlp)
    save(model, tmp_path / "m.wlz")
    result = bench.compare(tmp_path / "m.wlz", tmp_path / "no-env" / "bin" / "python")
    assert result["status"] == bench.NOT_RUN == "not run: NNCodec environment missing; run `make nncodec-env`"
    sizes = read_stored_sizes(tmp_path / "m.wlz")
    (row,) = result["layers"]
    assert row["ours_codes"] == sizes["packed.1.weight.codes"]
    assert row["ours_layer"] == sum(v for k, v in sizes.items() if k.startswith("packed.1."))
    assert row["floor"] == bench.entropy_floor(codes.numpy())["total"]
    assert "nnc_weights" not in row
    table = bench.markdown([result])
    assert "not run: NNCodec environment missing" in table and "| 1 | 32x64 |" in table


def test_a_failing_worker_is_reported_not_raised(tmp_path, trained_mlp):
    model, _, _ = packed_model(trained_mlp)
    save(model, tmp_path / "m.wlz")
    result = bench.compare(tmp_path / "m.wlz", sys.executable)  # wattless's python: no nncodec installed
    assert result["status"].startswith("failed (exit 1): ModuleNotFoundError")


@pytest.mark.skipif(not bench.env_python().exists(), reason="NNCodec environment missing (make nncodec-env)")
def test_nncodec_decodes_the_same_weights_exactly(tmp_path, trained_mlp):
    model, _, _ = packed_model(trained_mlp)
    save(model, tmp_path / "m.wlz")
    result = bench.compare(tmp_path / "m.wlz")
    assert result["status"] == "ok", result["status"]
    (row,) = result["layers"]
    assert row["nnc_max_error"] == 0.0 and result["nnc_joint_max_error"] == 0.0
    assert row["nnc_levels"] < row["nnc_weights"] < row["nnc_layer"]
