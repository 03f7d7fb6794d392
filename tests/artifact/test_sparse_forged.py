"""Forged sparse entries and streams: one ArtifactError each, before any large allocation.

Gap codes only move forward, so a file cannot even express decreasing indices; what it can
express (positions past the end, a stray escape, counts that disagree) is refused.
"""

import json
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wattless.artifact import read_artifact
from wattless.artifact.bitpack import pack_bits
from wattless.artifact.format import uint8_tensor
from wattless.artifact.sparse import encode_sparse
from wattless.errors import ArtifactError


def _gaps_example() -> torch.Tensor:
    """1000 floats, 5 non-zeros; gaps of 388 and 587 zeros need escapes even at 8 bits."""
    tensor = torch.zeros(1000)
    tensor[[3, 10, 11, 400, 999]] = torch.tensor([1.0, -2.0, 3.0, 4.0, 5.0])
    return tensor


def _bitmap_example() -> torch.Tensor:
    """64 floats, every other one non-zero: a bitmap, and values as zstd-compressed byte planes."""
    tensor = torch.zeros(64)
    tensor[::2] = torch.arange(1.0, 33.0)
    return tensor


EXAMPLES = {"gaps": _gaps_example(), "bitmap": _bitmap_example()}


def file_metadata(entry: dict) -> dict[str, str]:
    return {"format": "wattless.wlz", "format_version": "1", "wattless": "{}", "encodings": json.dumps({"w": entry})}


def refused_cheaply(path, message: str) -> None:
    """Reading `path` raises ArtifactError matching `message`, having allocated under 1 MiB on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match=message):
            read_artifact(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_the_examples_use_the_index_they_are_named_after():
    for index, tensor in EXAMPLES.items():
        entry = encode_sparse(tensor)[1]
        assert entry["index"] == index
    assert encode_sparse(_gaps_example())[1] == {
        "encoding": "sparse", "dtype": "float32", "shape": [1000], "nonzeros": 5, "index": "gaps", "gap_bits": 8,
        "gap_entries": 8, "index_bytes": 8, "index_zstd": False, "values_zstd": False, "values_byte_planes": False,
    }  # fmt: skip
    assert encode_sparse(_bitmap_example())[1]["values_zstd"]


@pytest.mark.parametrize(
    ("example", "change", "message"),
    [
        ("gaps", {"nonzeros": 1001}, "nonzeros 1001"),  # more non-zeros than elements
        ("gaps", {"nonzeros": -1}, "nonzeros -1"),
        ("gaps", {"nonzeros": True}, "nonzeros True"),
        ("gaps", {"nonzeros": 6}, "sparse values data has 20 bytes, expected 24"),
        ("gaps", {"nonzeros": 4}, "gap_entries 8, expected an integer in \\[4, 7\\]"),  # 996 zeros: 3 escapes at most
        ("gaps", {"shape": [2**40, 2**20]}, "limit"),
        ("gaps", {"shape": [2**28], "nonzeros": 2**28, "gap_entries": 2**28}, "sparse index data has 8 bytes"),
        ("gaps", {"dtype": "float64"}, "unsupported dtype"),
        ("gaps", {"index": "csr"}, "fields"),
        ("gaps", {"index": "bitmap"}, "fields"),
        ("gaps", {"extra": 1}, "fields"),
        ("gaps", {"gap_bits": 0}, "gap_bits 0"),
        ("gaps", {"gap_bits": 33}, "gap_bits 33"),
        ("gaps", {"gap_bits": 17}, "gap_bits 17"),
        ("gaps", {"gap_bits": 7}, "sparse index data has 8 bytes, expected 7"),
        ("gaps", {"gap_entries": 1001}, "gap_entries 1001"),  # more codes than elements
        ("gaps", {"gap_entries": 2**40}, "gap_entries"),
        ("gaps", {"gap_entries": 4}, "gap_entries 4"),  # fewer codes than non-zeros
        ("gaps", {"gap_entries": 9}, "gap_entries 9"),  # 995 zeros: 3 escapes at most
        ("gaps", {"index_bytes": 7}, "sparse index data has 7 bytes"),  # index stream too short
        ("gaps", {"index_bytes": 9}, "sparse index data has 9 bytes"),  # index stream too long
        ("gaps", {"index_bytes": 29}, "index_bytes 29"),  # past the stored data
        ("gaps", {"index_zstd": True}, "sparse index data is not a zstd frame"),
        ("gaps", {"values_zstd": True}, "sparse values data is not a zstd frame"),
        ("gaps", {"values_zstd": 1}, "flag"),
        ("bitmap", {"values_zstd": False}, "sparse values data has"),  # the frame read as values
        ("bitmap", {"gap_bits": 4, "gap_entries": 32}, "fields"),
        ("bitmap", {"shape": [65]}, "sparse index data has 8 bytes, expected 9"),
        ("bitmap", {"shape": [2**28]}, "sparse index data has 8 bytes"),
        ("bitmap", {"nonzeros": 33}, "sparse values"),
    ],
)
def test_a_tampered_entry_is_refused(tmp_path, forge, example, change, message):
    stored, entry = encode_sparse(EXAMPLES[example])
    forge(tmp_path / "m.wlz", {"w": stored}, file_metadata({**entry, **change}))
    refused_cheaply(tmp_path / "m.wlz", message)


def gaps_stream(codes: list[int], values: list[float], numel: int, dtype: torch.dtype = torch.float32):
    """A hand-made 2-bit gaps stream and its entry."""
    index = pack_bits(np.array(codes), 2)
    entry = {"encoding": "sparse", "dtype": str(dtype).removeprefix("torch."), "shape": [numel],
             "nonzeros": len(values), "index": "gaps", "gap_bits": 2, "gap_entries": len(codes),
             "index_bytes": len(index), "index_zstd": False, "values_zstd": False, "values_byte_planes": False}
    return uint8_tensor(index + torch.tensor(values, dtype=dtype).view(torch.uint8).numpy().tobytes()), entry


@pytest.mark.parametrize(
    ("codes", "values", "numel", "dtype", "message"),
    [
        ([0, 2], [1.0, 2.0], 3, torch.float32, "reach position 3, past the 3 elements"),
        ([0, 3, 0], [1.0, 2.0], 4, torch.float32, "gap_entries 3, expected an integer in \\[2, 2\\]"),
        ([0, 3], [1.0], 10, torch.float32, "the last one a value"),  # ends with an escape
        ([0, 1, 2], [1.0, 2.0], 10, torch.float32, "exactly 2 values"),  # three value codes
        ([1, 1], [1.0, 0.0], 10, torch.float32, "hold a zero"),
        ([1, 1], [1.0, -0.0], 10, torch.float32, "hold a zero"),
        ([1, 1], [1, 0], 10, torch.int32, "hold a zero"),
    ],
)
def test_forged_gap_codes_are_refused(tmp_path, forge, codes, values, numel, dtype, message):
    stored, entry = gaps_stream(codes, values, numel, dtype)
    forge(tmp_path / "m.wlz", {"w": stored}, file_metadata(entry))
    refused_cheaply(tmp_path / "m.wlz", message)


def test_padding_bits_are_refused(tmp_path, forge):
    stored, entry = gaps_stream([1], [1.0], 10)
    stored[0] |= 0b100  # a bit after the one 2-bit code
    forge(tmp_path / "gaps.wlz", {"w": stored}, file_metadata(entry))
    refused_cheaply(tmp_path / "gaps.wlz", "padding")
    bitmap = bytes([0b1, 0b1010])  # elements 0 and 9 of 10, and padding bit 11
    entry = {**entry, "index": "bitmap", "nonzeros": 2, "index_bytes": 2}
    del entry["gap_bits"], entry["gap_entries"]
    forge(tmp_path / "bitmap.wlz", {"w": uint8_tensor(bitmap + np.float32([1, 2]).tobytes())}, file_metadata(entry))
    refused_cheaply(tmp_path / "bitmap.wlz", "exactly 2 bits set among its 10")


FIELDS = ["dtype", "shape", "nonzeros", "index", "gap_bits", "gap_entries", "index_bytes", "index_zstd",
          "values_zstd", "values_byte_planes"]  # fmt: skip
FIELD_VALUES = st.one_of(
    st.integers(-2, 1100), st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.text(max_size=6),
    st.sampled_from(["bitmap", "gaps", "float32", "bool", "int64"]), st.lists(st.integers(-1, 2**40), max_size=3),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["fc.weight", "fc.mask", "out.weight"]),
    changes=st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=4),
    flips=st.lists(st.integers(min_value=0), max_size=3),
)
def test_fuzzed_sparse_entries_and_data(valid_file, tmp_path_factory, read_stored, forge, read_forged,
                                        name, changes, flips):
    """Whatever the fields and bytes: tensors or one ArtifactError, with allocations bounded by the limit."""
    stored, metadata = read_stored(valid_file)
    table = json.loads(metadata["encodings"])
    assert table[name]["encoding"] == "sparse"
    table[name] = {**table[name], **changes}
    data = stored[name].clone()
    for flip in flips:
        data[flip % len(data)] ^= 1 << (flip % 8)
    path = forge(tmp_path_factory.mktemp("fuzz") / "m.wlz", {**stored, name: data},
                 {**metadata, "encodings": json.dumps(table)})
    assert read_forged(path, name) < 8 * 2**20
