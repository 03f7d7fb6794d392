"""Parametrizations whose stored form is their compressed form: integer codes plus scales or a codebook.

A quantized weight *is* its codes. Techniques attach a :class:`PackedWeight` as the last
parametrization of a tensor; evaluation decodes it (so it runs exactly what is deployed), and the
model file stores the codes, bit-packed at their width or (when smaller) as the positions of the non-zero
codes plus their values, or range-coded, with the small float tensors beside them, instead of a dense
float tensor. Each kind is registered by name so that loading a file only ever
instantiates these allow-listed classes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

PackedParts = tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]
"""(tensors by part name, artifact encodings by part name, JSON info)."""

_KINDS: dict[str, type[PackedWeight]] = {}


def register_packed(cls: type[PackedWeight]) -> type[PackedWeight]:
    """Class decorator: make a :class:`PackedWeight` kind loadable from model files."""
    _KINDS[cls.kind] = cls
    return cls


def packed_kind(kind: str) -> type[PackedWeight]:
    if kind not in _KINDS:
        raise ValueError(f"unknown packed weight kind {str(kind)[:40]!r}")
    return _KINDS[kind]


def _channel_view(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Per-output-channel values (C,) shaped to broadcast over a weight of ``ndim`` dims."""
    return values.reshape(-1, *([1] * (ndim - 1))) if values.dim() == 1 else values


def _code_bits_ok(codes: torch.Tensor, bits: int) -> bool:
    return codes.numel() == 0 or (int(codes.min()) >= 0 and int(codes.max()) < 2**bits)


class PackedWeight(nn.Module):
    """Base class: ``forward(original)`` returns the decoded weight; the original is not used."""

    kind: ClassVar[str] = ""
    bits: int

    def decode(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return self.decode().to(original.dtype)

    def pack(self) -> PackedParts:
        raise NotImplementedError

    @classmethod
    def unpack(cls, parts: dict[str, torch.Tensor], info: dict[str, Any]) -> PackedWeight:
        """Rebuild from stored parts; raises ValueError on anything inconsistent."""
        raise NotImplementedError


def _checked_bits(info: dict[str, Any]) -> int:
    bits = info.get("bits")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise ValueError(f"bad bit width {str(bits)[:20]}")
    return bits


def _checked_parts(parts: dict[str, torch.Tensor], names: set[str]) -> None:
    if set(parts) != names:
        raise ValueError(f"packed weight has parts {sorted(parts)}, expected {sorted(names)}")


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
        return self.codes.float() * _channel_view(self.scale, ndim) + _channel_view(self.offset, ndim)

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


def packed_bits(module: nn.Module) -> dict[str, int]:
    """Bit width of every packed tensor, by ``layer.tensor`` name (e.g. ``{"fc1.weight": 4}``)."""
    from torch.nn.utils import parametrize

    bits = {}
    for name, sub in module.named_modules():
        if parametrize.is_parametrized(sub):
            for tensor_name, chain in sub.parametrizations.items():
                if isinstance(chain[-1], PackedWeight):
                    bits[f"{name}.{tensor_name}" if name else tensor_name] = chain[-1].bits
    return bits


# the per-row-width kind lives in its own module (registering itself); importing it here makes it loadable
# wherever packed weights are, and importable as wattless.packed.RowAffineWeight
from .packed_rows import RowAffineWeight  # noqa: E402, F401
