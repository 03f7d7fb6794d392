"""Bit packing: codes of every width survive pack and unpack, across the unpacker's chunks."""

import numpy as np
import pytest

from wattless.artifact.bitpack import pack_bits, packed_size, unpack_bits


@pytest.mark.parametrize("bits", [1, 3, 7, 8, 13, 16])
def test_codes_round_trip_across_chunks(bits):
    codes = np.random.default_rng(bits).integers(0, 2**bits, size=2 * 2**16 + 5, dtype=np.uint32)
    packed = pack_bits(codes, bits)
    assert len(packed) == packed_size(len(codes), bits)
    assert np.array_equal(unpack_bits(packed, bits, len(codes)), codes)
