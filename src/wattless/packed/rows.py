"""The ``affine-rows`` packed weight: per-output-channel affine codes with a bit width per channel.

``w[c] = codes[c] * scale[c] + offset[c]``, decoded exactly like a per-channel
:class:`~wattless.packed.AffineWeight`, but row ``c`` has its own width ``row_bits[c]`` (1..16), so
mixed precision can give a sensitive output channel more bits than its neighbours. The file stores
``row_bits`` (one byte per row) and, for each distinct width ``b``, the codes of the rows of that width
bit-packed at ``b`` bits as part ``codes_b<b>`` (rows in their original order), plus ``scale`` and ``offset``.

Imported by :mod:`wattless.packed`, so the kind is registered whenever packed weights are.
"""

from __future__ import annotations

import torch

from ._base import PackedParts, PackedWeight, _checked_bits, channel_view, register_packed

_CODE_PART = "codes_b"


def _check_row_bits(row_bits: torch.Tensor) -> None:
    if row_bits.dim() != 1 or row_bits.is_floating_point() or row_bits.dtype == torch.bool:
        raise ValueError("row_bits must be a 1-D integer tensor, one width per output channel")
    if row_bits.numel() and not (1 <= int(row_bits.min()) and int(row_bits.max()) <= 16):
        raise ValueError("row bit widths must lie in 1..16")


@register_packed
class RowAffineWeight(PackedWeight):
    """``w = codes * scale[c] + offset[c]`` per output channel ``c``, with codes of ``row_bits[c]`` bits.

    ``bits`` is the widest row (what :func:`~wattless.packed.packed_bits` reports); :attr:`mean_bits`
    the average width per weight (rows all hold the same number of weights).
    """

    kind = "affine-rows"

    def __init__(self, codes: torch.Tensor, row_bits: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor):
        super().__init__()
        _check_row_bits(row_bits)
        if codes.dim() == 0 or codes.shape[0] != row_bits.numel() or codes.shape[0] == 0:
            raise ValueError(f"codes of shape {list(codes.shape)} need one row per row_bits entry "
                             f"({row_bits.numel()}) and at least one row")
        if codes.is_floating_point() or codes.dtype == torch.bool:
            raise ValueError("codes must be integers")
        rows = codes.reshape(codes.shape[0], -1).long()
        limit = 2 ** row_bits.long()
        if rows.numel() and (int(rows.min()) < 0 or bool((rows.amax(dim=1) >= limit).any())):
            raise ValueError("codes out of range for their row's bits")
        for name, value in (("scale", scale), ("offset", offset)):
            if value.dim() != 1 or value.numel() != codes.shape[0] or not value.is_floating_point():
                raise ValueError(f"{name} must be a float vector with one value per output channel ({codes.shape[0]})")
        self.bits = int(row_bits.max())
        self.register_buffer("codes", codes.to(torch.int32))
        self.register_buffer("row_bits", row_bits.to(torch.uint8))
        self.register_buffer("scale", scale.float())
        self.register_buffer("offset", offset.float())

    @property
    def mean_bits(self) -> float:
        """Average code width per weight."""
        return float(self.row_bits.double().mean())

    def decode(self) -> torch.Tensor:
        ndim = self.codes.dim()
        return self.codes.float() * channel_view(self.scale, ndim) + channel_view(self.offset, ndim)

    def widths(self) -> list[int]:
        """The distinct row widths, ascending."""
        return sorted(int(b) for b in torch.unique(self.row_bits))

    def pack(self) -> PackedParts:
        parts = {"row_bits": self.row_bits, "scale": self.scale, "offset": self.offset}
        encodings = {"row_bits": "raw", "scale": "raw", "offset": "raw"}
        for b in self.widths():
            parts[f"{_CODE_PART}{b}"] = self.codes[self.row_bits == b]
            encodings[f"{_CODE_PART}{b}"] = ("bitpack", {"bits": b})
        return parts, encodings, {"bits": self.bits}

    @classmethod
    def unpack(cls, parts, info):
        row_bits = parts.get("row_bits")
        if not isinstance(row_bits, torch.Tensor) or row_bits.dtype != torch.uint8:
            raise ValueError("row_bits part missing or not uint8")
        _check_row_bits(row_bits)
        if row_bits.numel() == 0:
            raise ValueError("row_bits is empty")
        widths = sorted(int(b) for b in torch.unique(row_bits))
        expected = {"row_bits", "scale", "offset", *(f"{_CODE_PART}{b}" for b in widths)}
        if set(parts) != expected:
            raise ValueError(f"packed weight has parts {sorted(parts)}, expected {sorted(expected)}")
        if not isinstance(info, dict) or set(info) != {"bits"} or _checked_bits(info) != widths[-1]:
            raise ValueError(f"info {str(info)[:60]} does not match the widest row ({widths[-1]} bits)")
        groups = {b: parts[f"{_CODE_PART}{b}"] for b in widths}
        tail = groups[widths[0]].shape[1:]
        for b, group in groups.items():
            if group.dim() == 0 or group.shape[0] != int((row_bits == b).sum()) or group.shape[1:] != tail:
                raise ValueError(f"codes of the {b}-bit rows have shape {list(group.shape)}, which does not fit "
                                 f"{int((row_bits == b).sum())} rows of shape {list(tail)}")
            if group.is_floating_point() or group.dtype == torch.bool:
                raise ValueError(f"codes of the {b}-bit rows are not integers")
        codes = torch.empty((row_bits.numel(), *tail), dtype=torch.int32)
        for b, group in groups.items():
            if group.numel() and (int(group.min()) < 0 or int(group.max()) >= 2**b):
                raise ValueError(f"codes out of range for {b} bits")
            codes[row_bits == b] = group.to(torch.int32)
        return cls(codes, row_bits, parts["scale"], parts["offset"])
