"""zstd as every encoding uses it: one frame with content size and checksum, decompressed to an exact size."""

import zstandard

from wattless.artifact.format import FormatError

# Measured on one AMD EPYC core: write_artifact of LeNet-300-100 (266,610 float32 params) takes
# 0.11 s dense and 0.27 s at 90% sparsity; one 1M-float32 tensor 0.9 s dense, 2.1 s sparse.
# Level 22 gave the same bytes in the same time at these sizes, with more memory on larger ones.
ZSTD_LEVEL = 19


def compress(data: bytes | memoryview) -> bytes:
    """One zstd frame of `data`, recording its size and a checksum."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, write_content_size=True)
    return compressor.compress(data)


def smaller_with_zstd(data: bytes) -> tuple[bytes, bool]:
    """`data` or its zstd frame, whichever is smaller (`data` on a tie), and whether it is the frame."""
    frame = compress(data)
    return (frame, True) if len(frame) < len(data) else (data, False)


def decompress_exact(frame: bytes, expected: int, what: str) -> bytes:
    """The `expected` bytes in a zstd frame, refused before decompressing when the frame claims another size."""
    try:
        claimed = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as error:
        raise FormatError(f"{what} data is not a zstd frame with its size") from error
    # With a content size in the frame, zstandard allocates that size and ignores max_output_size.
    if claimed != expected:
        raise FormatError(f"{what} frame does not hold the {expected} bytes its entry describes")
    try:
        data = zstandard.ZstdDecompressor().decompress(frame, max_output_size=expected, allow_extra_data=False)
    except zstandard.ZstdError as error:
        raise FormatError(f"{what} frame is corrupt ({error})") from error
    if len(data) != expected:
        raise FormatError(f"{what} frame decompressed to {len(data)} bytes, expected {expected}")
    return data


def stream_bytes(data: bytes, expected: int, use_zstd: bool, what: str) -> bytes:
    """The `expected` bytes of a stream stored as is or (with `use_zstd`) as one zstd frame."""
    if use_zstd:
        return decompress_exact(data, expected, what)
    if len(data) != expected:
        raise FormatError(f"{what} data has {len(data)} bytes, expected {expected}")
    return data
