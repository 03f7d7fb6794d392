"""Where a .wlz file's bytes go (wattless.artifact.breakdown) and the layer view with its entropy floor."""

import math

import pytest
import torch

from wattless.artifact import write_artifact
from wattless.artifact.breakdown import breakdown, floor_bytes
from wattless.measurement.filebytes import file_bytes


def test_floor_of_hand_made_codes_and_floats():
    codes = torch.tensor([[0, 1, 0, 2], [0, 0, 1, 1]], dtype=torch.int32)  # n = 8, K = 4; codes 1, 2, 1, 1
    positions, values = floor_bytes(codes)
    assert positions == pytest.approx(8 * 1.0 / 8)  # n H(1/2) bits
    assert values == pytest.approx((3 * math.log2(4 / 3) + 1 * math.log2(4)) / 8)  # K H0 bits
    positions, values = floor_bytes(torch.tensor([0.0, 1.5, -0.0, 2.0]))  # -0.0 is zero: K = 2 of 4
    assert (positions, values) == (pytest.approx(0.5), 8.0)  # floats at full width
    assert floor_bytes(torch.ones(5, dtype=torch.int32)) == (0.0, 0.0)  # one symbol everywhere: nothing to code


def test_parts_sum_to_the_file_size(valid_file):
    found = breakdown(valid_file)
    tensors = found["tensors"]
    assert found["format_version"] >= 2 and found["header_bytes"] > 4
    assert found["safetensors_bytes"] + found["header_bytes"] + sum(t["bytes"] for t in tensors.values()) \
        == found["file_bytes"] == valid_file.stat().st_size
    for tensor in tensors.values():
        assert tensor["positions"] + tensor["values"] == tensor["bytes"] and tensor["positions"] >= 0
    coded = tensors["packed.fc.codes"]
    assert coded["encoding"] == "entropy" and 0 < coded["positions"] < coded["bytes"]
    assert tensors["fc.weight"]["encoding"] == "sparse" and tensors["fc.weight"]["positions"] > 0


def test_version_1_parts_sum_to_the_file_size(valid_file, tmp_path, read_stored, forge):
    stored, file_metadata = read_stored(valid_file)
    path = forge(tmp_path / "v1.wlz", stored, {**file_metadata, "format_version": "1"})
    found = breakdown(path)
    assert found["format_version"] == 1 and found["header_bytes"] == 0
    assert found["safetensors_bytes"] + sum(t["bytes"] for t in found["tensors"].values()) == path.stat().st_size


def test_layers_split_weights_tables_and_biases(tmp_path):
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(1, 4, (30, 40), dtype=torch.int32, generator=generator)
    codes[torch.rand(30, 40, generator=generator) < 0.9] = 0
    tensors = {"packed.fc.weight.codes": codes, "packed.fc.weight.codebook": torch.tensor([0.0, 0.5, 1.0, 2.0]),
               "fc.bias": torch.randn(30, generator=generator), "norm.running_mean": torch.ones(3)}
    path = tmp_path / "model.wlz"
    size = write_artifact(path, tensors, {"model": "m"},
                          encodings={"packed.fc.weight.codes": ("bitpack", {"bits": 2}),
                                     "packed.fc.weight.codebook": "raw", "fc.bias": "raw", "norm.running_mean": "raw"})
    found = file_bytes(path)
    assert found["header"]["bytes"] + sum(row["bytes"] for row in found["layers"]) == size
    fc, norm = found["layers"]
    assert (fc["name"], norm["name"]) == ("fc", "norm")
    assert fc["tables"] == 16 and fc["biases"] == 120 and fc["other"] == 0 and norm["other"] == 12
    assert fc["positions"] > 0 and fc["codes"] > 0
    positions, values = floor_bytes(codes)
    assert fc["floor_positions"] == pytest.approx(positions) and fc["floor_codes"] == pytest.approx(values)
    assert fc["floor_biases"] == 120.0  # a plain float bias at full width; the codebook, a table, at nothing
    assert fc["floor_tables"] == pytest.approx(4 * 1 / 8 * 0.8112781244591328 + 12)  # 3 of 4 non-zero, at width
    assert found["total"]["floor_with_tables"] == pytest.approx(found["total"]["floor"] + fc["floor_tables"])
    assert found["total"]["ratio"] == pytest.approx(size / sum(row["floor"] for row in found["layers"]))
    assert [row["name"] for row in file_bytes(path, order=["norm"])["layers"]] == ["norm", "fc"]  # the model's order


def test_layer_floor_names_the_sample(valid_file):
    found = file_bytes(valid_file)
    assert found["header"]["bytes"] + sum(row["bytes"] for row in found["layers"]) == valid_file.stat().st_size
    assert [row["name"] for row in found["layers"]][:2] == ["", "fc"]
