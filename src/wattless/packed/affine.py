"""Affine and codebook packed weights: ``w = codes * scale + offset`` and ``w = codebook[codes]``."""

from __future__ import annotations

import torch

from ._base import (
    PackedParts,
    PackedWeight,
    _checked_bits,
    _checked_parts,
    _code_bits_ok,
    channel_view,
    register_packed,
)


@register_packed
class AffineWeight(PackedWeight):
    """``w = codes * scale + offset``, per tensor (scalar scale) or per output channel (scale of shape (C,)).

    Covers uniform grids: mid-rise and uniform-landmark PTQ, learned step size, binary and ternary.
    """

    kind = "affine"

    def __init__(self, codes: torch.Tensor, bits: int, scale: torch.Tensor, offset: torch.Tensor):
        super().__init__()
        if not _code_bits_ok(codes, bits):
            raise ValueError(f"codes out of range for {bits} bits")
        channels = codes.shape[0] if codes.dim() else 1
        for name, value in (("scale", scale), ("offset", offset)):
            if value.dim() > 1 or (value.dim() == 1 and value.numel() != channels):
                raise ValueError(f"{name} must be a scalar or have one value per output channel ({channels})")
        self.bits = int(bits)
        self.register_buffer("codes", codes.to(torch.int32))
        self.register_buffer("scale", scale.float())
        self.register_buffer("offset", offset.float())

    def decode(self) -> torch.Tensor:
        ndim = self.codes.dim()
        return self.codes.float() * channel_view(self.scale, ndim) + channel_view(self.offset, ndim)

    def pack(self) -> PackedParts:
        return ({"codes": self.codes, "scale": self.scale, "offset": self.offset},
                {"codes": ("bitpack", {"bits": self.bits}), "scale": "raw", "offset": "raw"}, {"bits": self.bits})

    @classmethod
    def unpack(cls, parts, info):
        _checked_parts(parts, {"codes", "scale", "offset"})
        return cls(parts["codes"], _checked_bits(info), parts["scale"], parts["offset"])


@register_packed
class CodebookWeight(PackedWeight):
    """``w = codebook[codes]`` with one codebook (L,) per tensor, or one per output channel (C, L).

    Covers non-uniform landmark sets (histogram, normal quantiles) and k-means weight sharing.
    """

    kind = "codebook"

    def __init__(self, codes: torch.Tensor, bits: int, codebook: torch.Tensor):
        super().__init__()
        if codebook.dim() not in (1, 2) or codebook.shape[-1] == 0 or codebook.shape[-1] > 2**bits:
            raise ValueError(f"a codebook holds 1 to {2**bits} values per tensor or per channel")
        if not _code_bits_ok(codes, bits) or (codes.numel() and int(codes.max()) >= codebook.shape[-1]):
            raise ValueError("codes point outside the codebook")
        if codebook.dim() == 2 and (codes.dim() == 0 or codebook.shape[0] != codes.shape[0]):
            raise ValueError("a per-channel codebook needs one row per output channel")
        self.bits = int(bits)
        self.register_buffer("codes", codes.to(torch.int32))
        self.register_buffer("codebook", codebook.float())

    def decode(self) -> torch.Tensor:
        codes = self.codes.long()
        if self.codebook.dim() == 1:
            return self.codebook[codes]
        rows = codes.reshape(codes.shape[0], -1)
        return torch.gather(self.codebook, 1, rows).reshape(codes.shape)

    def pack(self) -> PackedParts:
        return ({"codes": self.codes, "codebook": self.codebook},
                {"codes": ("bitpack", {"bits": self.bits}), "codebook": "raw"}, {"bits": self.bits})

    @classmethod
    def unpack(cls, parts, info):
        _checked_parts(parts, {"codes", "codebook"})
        return cls(parts["codes"], _checked_bits(info), parts["codebook"])
