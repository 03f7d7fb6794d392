"""The base of packed weights: a parametrization whose stored form is its compressed form, and the registry of
kinds, so that loading a file only ever instantiates allow-listed classes."""

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


def channel_view(values: torch.Tensor, ndim: int) -> torch.Tensor:
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




def packed_bits(module: nn.Module, *, mean: bool = False) -> dict[str, float]:
    """Bit width of every packed tensor, by ``layer.tensor`` name (e.g. ``{"fc1.weight": 4}``): its widest code,
    or with ``mean`` the average width per value (they differ only where rows have their own widths)."""
    from torch.nn.utils import parametrize

    bits = {}
    for name, sub in module.named_modules():
        if parametrize.is_parametrized(sub):
            for tensor_name, chain in sub.parametrizations.items():
                if isinstance(chain[-1], PackedWeight):
                    width = getattr(chain[-1], "mean_bits", chain[-1].bits) if mean else chain[-1].bits
                    bits[f"{name}.{tensor_name}" if name else tensor_name] = width
    return bits


def layer_weight_bits(module: nn.Module) -> dict[str, float]:
    """Mean bits per weight of each layer whose ``weight`` is packed, by layer name; other layers are fp32."""
    return {key.removesuffix(".weight"): bits for key, bits in packed_bits(module, mean=True).items()
            if key == "weight" or key.endswith(".weight")}
