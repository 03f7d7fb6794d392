"""Human-readable numbers for tables and reports: bytes, milliseconds, joules, ratios, counts."""

from __future__ import annotations

import json
from typing import Any

MISSING = "–"
"""Shown wherever a value was not measured or cannot be computed (an en dash)."""

_BYTE_UNITS = ("KB", "MB", "GB", "TB")
_ENERGY_UNITS = ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ"), (1e-12, "pJ"))


def format_bytes(n_bytes: float | None) -> str:
    """A size in bytes, in binary units with one decimal (1 KB = 1024 bytes): ``"427.6 KB"``."""
    if n_bytes is None:
        return MISSING
    if abs(n_bytes) < 1024:
        return f"{n_bytes:.0f} B"
    value = n_bytes / 1024
    for unit in _BYTE_UNITS[:-1]:
        if round(abs(value), 1) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_BYTE_UNITS[-1]}"


def format_seconds_ms(ms: float | None) -> str:
    """A duration given in milliseconds: ``"4.5 µs"``, ``"0.011 ms"``, ``"12.30 ms"``, ``"1.25 s"``."""
    if ms is None:
        return MISSING
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 1:
        return f"{ms:.2f} ms"
    if ms >= 0.01:
        return f"{ms:.3f} ms"
    return f"{ms * 1000:.1f} µs"


def format_energy(joules: float | None) -> str:
    """An energy in joules with three significant digits in the largest fitting unit: ``"1.2 µJ"``."""
    if joules is None:
        return MISSING
    rounded = float(f"{joules:.3g}")  # round first, so 0.9996 µJ becomes "1 µJ", not "1e+03 nJ"
    for scale, unit in _ENERGY_UNITS:
        if abs(rounded) >= scale:
            return f"{rounded / scale:.3g} {unit}"
    scale, unit = _ENERGY_UNITS[-1]
    return f"{rounded / scale:.3g} {unit}"


def format_ratio(ratio: float | None) -> str:
    """A "times better" factor: ``"3.9x"`` (two decimals below 1, e.g. ``"0.50x"``)."""
    if ratio is None:
        return MISSING
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"


def format_text(value: Any) -> str:
    """``str(value)``, or ``"–"`` when the value is missing."""
    return MISSING if value is None else str(value)


def format_number(value: float | None, spec: str) -> str:
    """``value`` formatted with a format spec such as ``".2f"``, or ``"–"`` when missing."""
    return MISSING if value is None else format(value, spec)


def format_count(count: int | None) -> str:
    """An exact count with thousands separators: ``"109,386"``."""
    return MISSING if count is None else f"{count:,}"


def format_recipe(recipe: Any) -> str:
    """A recipe name, or its steps joined by ``" + "`` (inline steps as compact JSON)."""
    if recipe is None:
        return MISSING
    if isinstance(recipe, str):
        return recipe
    if isinstance(recipe, list):
        return " + ".join(format_recipe(step) for step in recipe)
    if isinstance(recipe, dict) and isinstance(recipe.get("technique"), str):
        fields = ",".join(f"{k}={v}" for k, v in sorted((recipe.get("config") or {}).items()) if k != "version")
        return f"{recipe['technique']}({fields})" if fields else recipe["technique"]
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"))


def format_footprint(footprint: dict[str, Any]) -> str:
    """The one-line summary of a command's footprint (a ``FootprintResult.as_dict()``)."""
    from dataclasses import fields

    from ..measurement.footprint import FootprintResult

    return FootprintResult(**{field.name: footprint[field.name] for field in fields(FootprintResult)}).summary()


def format_share(part: float | None, total: float) -> str:
    """``part`` as a percentage of ``total`` with one decimal, or the missing mark."""
    return MISSING if part is None or not total else f"{100 * part / total:.1f}"
