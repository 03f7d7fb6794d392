"""Where a model file's bytes go, layer by layer, against the entropy floor of the symbols it stores.

Built on :func:`wattless.artifact.breakdown.breakdown` (tensor by tensor, with the floor's definition): the
tensors are grouped by layer, and each layer's bytes are split into its weight's **positions** and **codes**
streams (the codes of a packed weight, or the values of a plain one), **tables** (a packed tensor's codebook,
scales, offsets, row widths), **biases** (a plain bias, or a packed bias's codes) and **other** tensors
(e.g. batch-norm statistics). The floor counts symbols only: a packed tensor's codes at their entropy
floor, a plain tensor's non-zeros at full width (positions at their floor), tables and the header at nothing.
So ``file / floor`` is how far the file is from an ideal coder of the same symbols, tables and header included.

The smallest files on Fashion-MNIST (bytes; format version 2 -> 3, same tensors): LeNet-300-100 from
``wattless search`` (per-layer sparsity, 8 clusters, 8-bit biases) and LeNet-5 pruned 95% (global, gradual,
2 epochs) + 16 clusters, 8-bit biases:

=============  ===========  =========  =====  ======  ======  ==============  =====  ==============
file           header       positions  codes  tables  biases  file            floor  file / floor
=============  ===========  =========  =====  ======  ======  ==============  =====  ==============
LeNet-300-100  685 -> 348   5,462      2,666  120     410     9,343 -> 9,006  9,184  1.017 -> 0.981
LeNet-5        795 -> 306   1,884      1,252  360     236     4,527 -> 4,038  3,435  1.318 -> 1.176
=============  ===========  =========  =====  ======  ======  ==============  =====  ==============

Floors: positions 6,199 / 2,049, codes 2,642 / 1,211, biases 343 / 175. The context-coded masks take 12%
and 8% under their i.i.d. floor; the codes stay within 1-4% of H0. What LeNet-5 has left over the floor is
the 136-byte safetensors header, 166 bytes of frame (counts, sizes, the data statistics and the training
summary), float32 tables (five 16-entry codebooks and the biases' scales and offsets: fine-tuned values whose
mantissas do not compress; adaptive byte planes would save under 30 bytes) and 8-bit bias codes, whose H0
over 6 to 300 values of a 256-symbol alphabet no real code reaches (a fitted Gaussian costs over 8 bits).
"""

from __future__ import annotations

import os
import re
from typing import Any

_PARTS = ("positions", "codes", "tables", "biases", "other")
_FLOORS = ("floor_positions", "floor_codes", "floor_biases", "floor_other")


def _natural(name: str) -> list[Any]:
    """Sort key putting "features.10" after "features.2"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.]", name)]


def file_bytes(path: str | os.PathLike[str], order: list[str] | None = None) -> dict[str, Any]:
    """Bytes of the `.wlz` file at `path` by part and layer, each layer's entropy floor, and file / floor.

    Layers come in the order of the names in `order` (e.g. the model's), then any others by name.

    Returns ``{"format_version", "header": {"safetensors", "frame", "bytes"}, "layers": [row, ...], "total":
    {"bytes", "floor", "ratio", "floor_with_tables", "ratio_with_tables"}}``; each row has ``name``, the byte
    counts ``positions``, ``codes``, ``tables``, ``biases``, ``other`` and their sum ``bytes``, the floors (bytes,
    fractional) ``floor_positions``, ``floor_codes``, ``floor_biases``, ``floor_other`` and their sum ``floor``,
    and ``floor_tables``: the tables counted as plain tensors are (floats at full width), which ``floor`` leaves
    out and ``*_with_tables`` add. The header and the rows' ``bytes`` sum to the file's size exactly.

    Raises:
        ArtifactError: the file cannot be read (see :func:`wattless.artifact.read_artifact`).
    """
    from ..artifact.breakdown import breakdown
    from ..io import PACKED_PREFIX

    found = breakdown(path)
    layers: dict[str, dict[str, Any]] = {}
    for name, tensor in found["tensors"].items():
        packed = name.startswith(PACKED_PREFIX)
        key, _, part = name.removeprefix(PACKED_PREFIX).rpartition(".") if packed else (name, "", "")
        layer, _, tensor_name = key.rpartition(".")
        row = layers.setdefault(layer, {"name": layer, **dict.fromkeys(_PARTS, 0), **dict.fromkeys(_FLOORS, 0.0),
                                                "floor_tables": 0.0})
        floor = tensor["floor_positions"] + tensor["floor_values"]
        if packed and not part.startswith("codes"):  # codes, or codes_b<bits> of affine-rows
            row["tables"] += tensor["bytes"]
            row["floor_tables"] += floor
        elif tensor_name == "weight":
            row["positions"] += tensor["positions"]
            row["codes"] += tensor["values"]
            row["floor_positions"] += tensor["floor_positions"]
            row["floor_codes"] += tensor["floor_values"]
        else:
            column = "biases" if tensor_name == "bias" else "other"
            row[column] += tensor["bytes"]
            row[f"floor_{column}"] += floor
    rank = {name: index for index, name in enumerate(order or [])}
    rows = [layers[name] for name in sorted(layers, key=lambda name: (rank.get(name, len(rank)), _natural(name)))]
    for row in rows:
        row["bytes"] = sum(row[part] for part in _PARTS)
        row["floor"] = sum(row[floor] for floor in _FLOORS)
    floor = sum(row["floor"] for row in rows)
    with_tables = floor + sum(row["floor_tables"] for row in rows)
    header = {"safetensors": found["safetensors_bytes"], "frame": found["header_bytes"],
              "bytes": found["safetensors_bytes"] + found["header_bytes"]}
    return {"format_version": found["format_version"], "header": header, "layers": rows,
            "total": {"bytes": found["file_bytes"], "floor": floor,
                      "ratio": found["file_bytes"] / floor if floor else None, "floor_with_tables": with_tables,
                      "ratio_with_tables": found["file_bytes"] / with_tables if with_tables else None}}
