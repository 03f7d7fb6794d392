"""Parametrizations whose stored form is their compressed form: integer codes plus scales or a codebook.

A quantized weight *is* its codes. Techniques attach a :class:`PackedWeight` as the last
parametrization of a tensor; evaluation decodes it (so it runs exactly what is deployed), and the
model file stores the codes, bit-packed at their width or (when smaller) as the positions of the non-zero
codes plus their values, or range-coded, with the small float tensors beside them, instead of a dense
float tensor. Each kind is registered by name so that loading a file only ever
instantiates these allow-listed classes.
"""

from ._base import (
    PackedParts,
    PackedWeight,
    _checked_bits,
    _checked_parts,
    channel_view,
    layer_weight_bits,
    packed_bits,
    packed_kind,
    register_packed,
)
from .affine import AffineWeight, CodebookWeight
from .rows import RowAffineWeight

__all__ = ["AffineWeight", "CodebookWeight", "PackedParts", "PackedWeight", "RowAffineWeight", "_checked_bits",
           "_checked_parts", "channel_view", "layer_weight_bits", "packed_bits", "packed_kind", "register_packed"]
