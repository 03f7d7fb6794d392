"""The entropy encoding: exact round trips, fixed bytes, the writer's choice, and forged entries refused cheaply."""

import json
import math
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wattless.artifact import entropy as entropy_module
from wattless.artifact import read_artifact, read_encodings, write_artifact
from wattless.artifact.encodings import CODE_ENCODINGS
from wattless.artifact.entropy import MAX_DIAGONALS, decode_entropy, encode_entropy
from wattless.artifact.format import FormatError, uint8_tensor
from wattless.errors import ArtifactError

CODE_DTYPES = [torch.uint8, torch.int16, torch.int32, torch.int64]


def pruned_codes(shape: tuple[int, ...], density: float, clusters: int, seed: int) -> torch.Tensor:
    """Codes 1..clusters-1 where a random mask keeps a weight, 0 (the pruned weights' code) elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(1, max(clusters, 2), shape, dtype=torch.int32, generator=generator)
    return codes.masked_fill(torch.rand(shape, generator=generator) >= density, 0)


def grid_codes(rows: int = 100, side: int = 28, seed: int = 0) -> torch.Tensor:
    """Codes of a layer over a flattened side x side image: each row keeps a few random blobs of pixels, as
    a pruned first layer keeps its receptive fields, and the border pixels are dead everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side]
    codes = np.zeros((rows, side * side), dtype=np.int32)
    for row in range(rows):
        keep = np.zeros((side, side), dtype=bool)
        for cy, cx in rng.integers(4, side - 4, size=(3, 2)):
            keep |= (y - cy) ** 2 + (x - cx) ** 2 <= rng.integers(2, 9)
        codes[row, keep.ravel()] = rng.integers(1, 16, size=int(keep.sum()))
    return torch.from_numpy(codes)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(st.integers(0, 9), max_size=4),
    density=st.floats(0, 1),
    alphabet=st.sampled_from([2, 3, 16, 255, 2**15, 2**16]),
    dtype=st.sampled_from(CODE_DTYPES),
    seed=st.integers(0, 2**16),
)
def test_codes_round_trip(shape, density, alphabet, dtype, seed):
    if dtype == torch.uint8 and alphabet > 256 or dtype == torch.int16 and alphabet > 2**15:
        alphabet = 2
    codes = pruned_codes(tuple(shape), density, alphabet, seed).to(dtype)
    stored, entry = encode_entropy(codes)
    assert stored.dtype == torch.uint8 and stored.numel() % 4 == 0
    decoded = decode_entropy(stored, json.loads(json.dumps(entry)), 2**20)
    assert decoded.dtype == dtype and decoded.shape == codes.shape and torch.equal(decoded, codes)
    assert entry["nonzeros"] == int(torch.count_nonzero(codes))


def test_the_bytes_are_fixed():
    """Files written today must decode forever: a change to the model needs a new encoding name."""
    i, j = np.meshgrid(np.arange(12), np.arange(20), indexing="ij")
    codes = np.where((i * 7 + j * 13) % 5 == 0, (i + j) % 6 + 1, 0).astype(np.int32)
    codes[:, 3] = 0
    stored, entry = encode_entropy(torch.from_numpy(codes))
    assert entry == {"encoding": "entropy", "dtype": "int32", "shape": [12, 20], "nonzeros": 46, "alphabet": 7,
                     "stride": 5}
    golden = bytes.fromhex("1e620d84ae48e2827adf1dab14a5581d91d857284d670919")
    assert stored.numpy().tobytes() == golden
    assert torch.equal(decode_entropy(uint8_tensor(golden), entry, 2**20), torch.from_numpy(codes))


def test_the_stride_finds_the_width_of_a_flattened_grid():
    codes = grid_codes()
    stored, entry = encode_entropy(codes)
    assert entry["stride"] in (27, 28, 29)  # a neighbour in the image row above
    rows, cols = codes.shape
    without = entropy_module.encode_mask_and_values(codes.numpy().astype(np.int64), rows, cols, 0, 16)
    assert stored.numel() < 0.9 * 4 * len(without)


def test_the_writer_entropy_codes_pruned_codes_when_smallest(tmp_path, monkeypatch):
    codes = grid_codes(seed=1)
    chosen = {"codes": ("bitpack", {"bits": 4})}
    size = write_artifact(tmp_path / "entropy.wlz", {"codes": codes}, {}, encodings=chosen)
    assert read_encodings(tmp_path / "entropy.wlz")["codes"]["encoding"] == "entropy"
    assert torch.equal(read_artifact(tmp_path / "entropy.wlz")[0]["codes"], codes)
    monkeypatch.delitem(CODE_ENCODINGS, "entropy")
    without = write_artifact(tmp_path / "sparse.wlz", {"codes": codes}, {}, encodings=chosen)
    assert read_encodings(tmp_path / "sparse.wlz")["codes"]["encoding"] == "sparse"
    assert size < 0.95 * without  # the values, uniform here, take most of the bytes in both


def test_uniform_dense_codes_stay_bitpacked(tmp_path):
    """Nothing to gain from modelling uniform codes, so the range coder's few bytes more lose to bitpack."""
    codes = torch.randint(0, 16, (64, 64), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    write_artifact(tmp_path / "m.wlz", {"codes": codes}, {}, encodings={"codes": ("bitpack", {"bits": 4})})
    assert read_encodings(tmp_path / "m.wlz")["codes"]["encoding"] == "bitpack"


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.zeros(3, dtype=torch.float32), "integer codes"),
        (torch.zeros(3, dtype=torch.int8), "integer codes"),
        (torch.tensor([0, -1]), r"\[0, 65535\]"),
        (torch.tensor([0, 2**16]), r"\[0, 65535\]"),
        (torch.zeros(1, MAX_DIAGONALS + 1, dtype=torch.int32), "diagonals"),
    ],
)
def test_tensors_it_does_not_take_are_refused(tensor, message):
    with pytest.raises(ValueError, match=message):
        encode_entropy(tensor)


EXAMPLE = pruned_codes((12, 30), 0.3, 8, seed=0)
EXAMPLE_STORED, EXAMPLE_ENTRY = encode_entropy(EXAMPLE)


def file_metadata(entry: dict) -> dict[str, str]:
    return {"format": "wattless.wlz", "format_version": "2", "wattless": "{}", "encodings": json.dumps({"w": entry})}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "fields"),
        ({"dtype": "float32"}, "unsupported dtype"),
        ({"dtype": ["int32"]}, "unsupported dtype"),
        ({"shape": [-1, 30]}, "non-negative"),
        ({"shape": [2**40, 2**40]}, "limit"),
        ({"shape": [1, MAX_DIAGONALS + 1], "dtype": "uint8"}, "diagonals"),
        ({"nonzeros": 361}, "nonzeros"),
        ({"nonzeros": -1}, "nonzeros"),
        ({"nonzeros": True}, "nonzeros"),
        ({"nonzeros": EXAMPLE_ENTRY["nonzeros"] + 1}, "non-zeros, its entry says"),
        ({"alphabet": 1}, "alphabet"),
        ({"alphabet": 2**16 + 1}, "alphabet"),
        ({"alphabet": 257, "dtype": "uint8"}, "alphabet"),
        ({"alphabet": 2.0}, "alphabet"),
        ({"stride": 1}, "stride 1"),
        ({"stride": 30}, "stride"),
        ({"stride": None}, "stride"),
    ],
)
def test_a_tampered_entry_is_refused(tmp_path, forge, change, message):
    entry = {**EXAMPLE_ENTRY, **change}
    forge(tmp_path / "m.wlz", {"w": EXAMPLE_STORED}, file_metadata(entry))
    with pytest.raises(ArtifactError, match=message):
        read_artifact(tmp_path / "m.wlz")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (EXAMPLE_STORED.numpy().tobytes()[:-1], "whole 32-bit words"),
        # the range decoder reads a word ahead, so one word too many goes unseen; two do not
        (EXAMPLE_STORED.numpy().tobytes() + bytes(8), "past its last code"),
        (bytes(4), "entropy"),
        (b"", "entropy"),
    ],
)
def test_a_tampered_stream_is_refused(tmp_path, forge, data, message):
    forge(tmp_path / "m.wlz", {"w": uint8_tensor(data)}, file_metadata(EXAMPLE_ENTRY))
    with pytest.raises(ArtifactError, match=message):
        read_artifact(tmp_path / "m.wlz")


def test_an_empty_tensor_takes_no_data():
    stored, entry = encode_entropy(torch.zeros(0, 5, dtype=torch.int32))
    assert stored.numel() == 0 and entry["nonzeros"] == 0
    with pytest.raises(FormatError, match="empty tensor"):
        decode_entropy(uint8_tensor(bytes(4)), entry, 2**20)


def test_constriction_errors_become_format_errors(monkeypatch):
    def broken(*args, **kwargs):
        raise AssertionError("Tried to decode from compressed data that is invalid")

    monkeypatch.setattr(entropy_module.constriction.stream.queue, "RangeDecoder", broken)
    with pytest.raises(FormatError, match="corrupt"):
        decode_entropy(EXAMPLE_STORED, EXAMPLE_ENTRY, 2**20)


def test_a_huge_forged_matrix_is_refused_before_decoding(tmp_path, forge, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoding must not start")

    monkeypatch.setattr(entropy_module, "decode_mask_and_values", no_decoding)
    entry = {**EXAMPLE_ENTRY, "shape": [2**20, 2**20]}
    forge(tmp_path / "m.wlz", {"w": EXAMPLE_STORED}, file_metadata(entry))
    with pytest.raises(ArtifactError, match="limit"):
        read_artifact(tmp_path / "m.wlz", max_tensor_bytes=2**30)


FIELDS = ["dtype", "shape", "nonzeros", "alphabet", "stride"]
FIELD_VALUES = st.one_of(
    st.integers(-2, 1100), st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.text(max_size=6),
    st.sampled_from(["uint8", "int16", "int64", "float32"]), st.lists(st.integers(-1, 600), max_size=3),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=3),
    flips=st.lists(st.integers(min_value=0), max_size=3),
    cut=st.integers(0, 8),
)
def test_fuzzed_entries_and_streams(valid_file, tmp_path_factory, read_stored, forge, read_forged, changes,
                                    flips, cut):
    """Whatever the fields and bytes: tensors or one ArtifactError, with allocations bounded by the limit."""
    name = "packed.fc.codes"
    stored, metadata = read_stored(valid_file)
    table = json.loads(metadata["encodings"])
    assert table[name]["encoding"] == "entropy"
    table[name] = {**table[name], **changes}
    data = stored[name].clone()[: max(0, len(stored[name]) - 4 * cut)]
    for flip in flips:
        if len(data):
            data[flip % len(data)] ^= 1 << (flip % 8)
    path = forge(tmp_path_factory.mktemp("fuzz") / "m.wlz", {**stored, name: data},
                 {**metadata, "encodings": json.dumps(table)})
    assert read_forged(path, name) < 16 * 2**20


def test_decoding_allocates_a_small_multiple_of_the_tensor():
    codes = pruned_codes((256, 1024), 0.05, 16, seed=1)
    stored, entry = encode_entropy(codes)
    tracemalloc.start()
    try:
        decode_entropy(stored, entry, 2**22)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * codes.numel() * 4
    assert math.prod(entry["shape"]) == codes.numel()
