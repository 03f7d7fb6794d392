"""The sparse encoding: exact round trips for any mask, escapes, the writer's choice, forged entries refused."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wattless.artifact import read_artifact, read_encodings, write_artifact
from wattless.artifact.bitpack import pack_bits
from wattless.artifact.encodings import CODE_ENCODINGS, ENCODINGS, Encoding
from wattless.artifact.format import uint8_tensor
from wattless.artifact.sparse import decode_sparse, encode_sparse, gap_codes

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def entry_of(path) -> dict:
    return read_encodings(path)["w"]


def random_sparse(shape: list[int], density: float, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Random bits (NaNs included) where a random mask keeps them, +0.0 or -0.0 elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    count = math.prod(shape)
    bits = torch.randint(0, 256, (count * dtype.itemsize,), dtype=torch.uint8, generator=generator)
    tensor = bits.view(dtype).clone()
    zero = torch.rand(count, generator=generator) >= density
    tensor[zero] = 0.0
    tensor[zero & (torch.rand(count, generator=generator) < 0.5)] = -0.0
    return tensor.reshape(shape)


def same_bits(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return got.dtype == expected.dtype and got.shape == expected.shape and torch.equal(
        got.reshape(-1).view(torch.uint8), expected.reshape(-1).view(torch.uint8)
    )


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(st.integers(0, 7), max_size=4),
    density=st.floats(0, 1),
    dtype=st.sampled_from(FLOAT_DTYPES),
    seed=st.integers(0, 2**16),
    encoding=st.sampled_from([None, "sparse"]),
)
def test_random_masks_round_trip(tmp_path_factory, shape, density, dtype, seed, encoding):
    tensor = random_sparse(shape, density, dtype, seed)
    path = tmp_path_factory.mktemp("sparse") / "m.wlz"
    write_artifact(path, {"w": tensor}, {}, encodings=encoding and {"w": encoding})
    got = read_artifact(path)[0]["w"]
    if entry_of(path)["encoding"] == "sparse":
        tensor = tensor.masked_fill(tensor == 0, 0)  # -0.0 comes back as +0.0; every other value bit for bit
    assert same_bits(got, tensor)


def test_negative_zero_is_read_back_as_zero_and_nan_payloads_are_kept(tmp_path):
    nan = torch.tensor([0x7FC01234], dtype=torch.int32).view(torch.float32)
    tensor = torch.cat([torch.tensor([-0.0, 0.0, -0.0, 1.5, -2.0]), nan, torch.zeros(10)])
    write_artifact(tmp_path / "m.wlz", {"w": tensor}, {}, encodings={"w": "sparse"})
    got = read_artifact(tmp_path / "m.wlz")[0]["w"]
    assert entry_of(tmp_path / "m.wlz")["nonzeros"] == 3
    assert same_bits(got, tensor.masked_fill(tensor == 0, 0))


def test_gap_codes_escape_long_gaps():
    # Gaps of 0, 2 and 36 zeros at 2 bits: 36 = 12 escapes of 3, then a value after 0 more zeros.
    assert gap_codes(np.array([0, 3, 40]), 2).tolist() == [0, 2] + [3] * 12 + [0]


@settings(max_examples=100, deadline=None)
@given(
    positions=st.sets(st.integers(0, 4999), max_size=30),
    bits=st.integers(1, 8),
    dtype=st.sampled_from(FLOAT_DTYPES),
)
def test_gaps_at_any_width_decode_to_the_same_positions(positions, bits, dtype):
    positions = np.array(sorted(positions), dtype=np.int64)
    codes = gap_codes(positions, bits)
    values = torch.arange(1, len(positions) + 1, dtype=dtype)
    stored = pack_bits(codes, bits) + values.view(torch.uint8).numpy().tobytes()
    entry = {"encoding": "sparse", "dtype": str(dtype).removeprefix("torch."), "shape": [5000],
             "nonzeros": len(positions), "index": "gaps", "gap_bits": bits, "gap_entries": len(codes),
             "index_bytes": (len(codes) * bits + 7) // 8, "index_zstd": False, "values_zstd": False,
             "values_byte_planes": False}
    dense = decode_sparse(uint8_tensor(stored), entry, 2**20)
    assert torch.nonzero(dense).reshape(-1).tolist() == positions.tolist()
    assert torch.equal(dense[torch.from_numpy(positions)], values)


def test_the_writer_picks_sparse_for_a_90_percent_zero_weight(tmp_path):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(300, 100, generator=generator)
    weight[torch.rand(300, 100, generator=generator) < 0.9] = 0
    sizes = {
        encoding: write_artifact(tmp_path / f"{encoding}.wlz", {"w": weight}, {},
                                 encodings=encoding and {"w": encoding})
        for encoding in (None, "raw", "zstd")
    }
    assert entry_of(tmp_path / "None.wlz")["encoding"] == "sparse"
    assert sizes[None] < 0.11 * sizes["raw"] and sizes[None] < 0.9 * sizes["zstd"]
    assert torch.equal(read_artifact(tmp_path / "None.wlz")[0]["w"], weight)


@pytest.mark.parametrize(("zeros", "tried"), [(24, False), (25, True)])
def test_sparse_is_tried_only_on_a_tensor_at_least_a_quarter_zeros(tmp_path, monkeypatch, zeros, tried):
    calls = []

    def counting_encode(tensor):
        calls.append(tensor)
        return encode_sparse(tensor)

    monkeypatch.setitem(ENCODINGS, "sparse", Encoding(counting_encode, decode_sparse))
    tensor = torch.arange(1.0, 101.0)
    tensor[:zeros] = 0
    write_artifact(tmp_path / "m.wlz", {"w": tensor}, {})
    assert bool(calls) == tried


def test_bitpacked_codes_that_are_mostly_zero_may_be_stored_sparse(tmp_path, monkeypatch):
    monkeypatch.delitem(CODE_ENCODINGS, "entropy")  # which is smaller still (tests/artifact/test_entropy.py)
    codes = torch.zeros(300, 784, dtype=torch.int32)
    generator = torch.Generator().manual_seed(0)
    kept = torch.rand(codes.shape, generator=generator) < 0.1
    codes[kept] = torch.randint(1, 16, (int(kept.sum()),), generator=generator, dtype=torch.int32)
    size = write_artifact(tmp_path / "c.wlz", {"codes": codes}, {}, encodings={"codes": ("bitpack", {"bits": 4})})
    tensors, _ = read_artifact(tmp_path / "c.wlz")
    assert torch.equal(tensors["codes"], codes)
    assert read_encodings(tmp_path / "c.wlz")["codes"]["encoding"] == "sparse"
    assert size < codes.numel() * 4 / 8  # smaller than the 4-bit packing alone
