"""A model file is read within what the architecture its metadata describes holds: a forged stored shape is refused
before anything that size is allocated."""

import json
import tracemalloc

import pytest

from wattless.artifact.format import uint8_tensor
from wattless.errors import ArtifactError
from wattless.io import load, save


@pytest.mark.parametrize("index", ["gaps", "bitmap"])
def test_a_forged_sparse_shape_costs_no_memory(tmp_path, trained_mlp, read_stored, forge, index):
    """A 2 GiB all-zero bias in a 10 KB file: 0.4 GB and 15 s before it was refused for its shape."""
    save(trained_mlp, tmp_path / "m.wlz")
    stored, file_metadata = read_stored(tmp_path / "m.wlz")
    encodings = json.loads(file_metadata["encodings"])
    numel = 2**29
    entry = {"encoding": "sparse", "dtype": "float32", "shape": [numel], "nonzeros": 0, "index": index,
             "index_bytes": 0, "index_zstd": False, "values_zstd": False, "values_byte_planes": False}
    if index == "gaps":
        entry.update(gap_bits=8, gap_entries=0)
        stored["1.bias"] = uint8_tensor(b"")
    else:
        from wattless.artifact.compression import compress

        frame = compress(bytes(numel // 8))
        entry.update(index_bytes=len(frame), index_zstd=True)
        stored["1.bias"] = uint8_tensor(frame)
    encodings["1.bias"] = entry
    path = forge(tmp_path / "forged.wlz", stored, {**file_metadata, "encodings": json.dumps(encodings)})
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match=r"tensor '1.bias': a tensor of shape \[536870912\] would exceed"):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * path.stat().st_size + 2**24  # before: 2 GiB (tracemalloc sees numpy's allocations)


def test_a_model_file_still_loads_within_its_limits(tmp_path, trained_mlp):
    save(trained_mlp, tmp_path / "m.wlz")
    assert load(tmp_path / "m.wlz").spec == trained_mlp.spec
