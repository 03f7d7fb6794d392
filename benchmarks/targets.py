"""Targets, verdicts and choices shared by the benchmark studies.

A :class:`Target` states what is compared (``label``), how (``op``, ``threshold``) and which provenances of
the figure it accepts: a target on *estimated* energy accepts an estimate and nothing else, a target on a
measured quantity only a measurement. :func:`verdict` refuses (``ValueError``) a figure whose provenance the
target does not accept, so no study can print "met" for a number of the wrong kind.

Provenance kinds: ``measured`` (run, timed or stat-ed on a real artifact), ``estimated`` (an analytical
model, e.g. the 45 nm energy table), ``simulated`` (a simulator) and ``declared`` (copied from file metadata).
Records with ``schema_version >= 2`` carry ``record["provenance"][key] = {"kind": ...}``;
:func:`provenance_of` reads that, and infers the kind for older records.

:func:`choose_on_validation` is the one way a study picks a best variant: on the validation split, never on
the test split it then reports.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

KINDS = ("measured", "simulated", "estimated", "declared")
"""Provenance kinds, from the strongest to the weakest (see :func:`derived`)."""
MET, MISSED = "met", "**missed**"
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                   "<": operator.lt}
_MEASURED_KEYS = frozenset({"accuracy", "rmse", "mae", "r2", "loss", "size_bytes", "latency_ms", "macs", "bops",
                            "params", "nonzero_params", "size_bytes_fp32", "compression_ratio"})
"""Keys of a record that come from running, timing, counting or stat-ing the real artifact."""
_DECLARED_IN_ONNX = frozenset({"size_bytes_fp32", "params", "nonzero_params", "compression_ratio"})
"""Keys ``measure`` copies from an ONNX file's metadata (the fp32 size and parameter counts of its source)."""
_ENERGY_KEYS = frozenset({"energy_j_per_sample", "energy_estimate"})
_METERS = frozenset({"rapl", "nvml"})

T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """``value op threshold`` for a figure of one of the ``accepts`` provenances."""

    label: str
    op: str
    threshold: float
    accepts: frozenset[str] = frozenset({"measured"})

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"target {self.label!r}: op must be one of {', '.join(_OPS)}, got {self.op!r}")
        unknown = set(self.accepts) - set(KINDS)
        if not self.accepts or unknown:
            raise ValueError(f"target {self.label!r}: accepts must be a non-empty subset of {KINDS}, got "
                             f"{sorted(self.accepts)}")
        object.__setattr__(self, "accepts", frozenset(self.accepts))

    def met(self, value: float, provenance: str) -> bool:
        """Whether ``value`` meets the target; refuses a provenance the target does not accept."""
        check_provenance(self, provenance)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"target {self.label!r}: no value to judge ({value!r})")
        return _OPS[self.op](value, self.threshold)

    def describe(self, fmt: str = "{:g}") -> str:
        """``label op threshold``, e.g. ``4-bit PTQ drop (points) <= 1.5``."""
        return f"{self.label} {self.op} {fmt.format(self.threshold)}"


def check_provenance(target: Target, provenance: str) -> None:
    if provenance not in KINDS:
        raise ValueError(f"unknown provenance {provenance!r}; one of {', '.join(KINDS)}")
    if provenance not in target.accepts:
        raise ValueError(f"target {target.label!r} accepts {' or '.join(sorted(target.accepts))} figures only; "
                         f"this one is {provenance}")


def verdict(target: Target, value: float, provenance: str) -> str:
    """``met`` or ``**missed**``; ``ValueError`` when the target does not accept ``provenance``."""
    return MET if target.met(value, provenance) else MISSED


def all_met(*checks: tuple[Target, float, str]) -> str:
    """One verdict for several ``(target, value, provenance)`` that must all hold (every one is checked)."""
    results = [target.met(value, provenance) for target, value, provenance in checks]
    return MET if all(results) else MISSED


def derived(*provenances: str) -> str:
    """The provenance of a figure computed from others (a ratio, a difference): the weakest of them."""
    if not provenances:
        raise ValueError("derived() needs at least one provenance")
    for kind in provenances:
        if kind not in KINDS:
            raise ValueError(f"unknown provenance {kind!r}; one of {', '.join(KINDS)}")
    return max(provenances, key=KINDS.index)


def _energy_kind(entry: Any, key: str) -> str:
    method = entry.get("method") if isinstance(entry, dict) else None
    if not isinstance(method, str):
        raise ValueError(f"record {key!r} has no energy method to tell its provenance: {entry!r}")
    if method.startswith("estimate"):
        return "estimated"
    if method.startswith("simulat"):
        return "simulated"
    if method in _METERS:
        return "measured"
    raise ValueError(f"record {key!r}: energy method {method!r} of unknown provenance")


def provenance_of(record: dict[str, Any], key: str) -> str:
    """The provenance kind of ``record[key]``.

    New records (``schema_version >= 2``) say it in ``record["provenance"][key]["kind"]``. For older ones (and
    keys a new record leaves out) it is inferred: energy from its ``method`` (``estimate-*`` estimated,
    ``rapl``/``nvml`` measured); quality, size, latency and operation counts measured, except the fp32 size and
    parameter counts of an ONNX file, which ``measure`` copies from the file's metadata (declared).
    """
    given = record.get("provenance")
    if isinstance(given, dict) and key in given:
        entry = given[key]
        kind = entry.get("kind") if isinstance(entry, dict) else entry
        if kind not in KINDS:
            raise ValueError(f"record provenance of {key!r} is {kind!r}; one of {', '.join(KINDS)}")
        return kind
    if key in _ENERGY_KEYS:
        if key not in record:
            raise KeyError(f"record has no {key!r}")
        return _energy_kind(record[key], key)
    if key in _DECLARED_IN_ONNX and str(record.get("artifact") or "").endswith(".onnx"):
        return "declared"
    if key in _MEASURED_KEYS:
        return "measured"
    raise ValueError(f"no provenance known for record key {key!r}")


def energy_entry(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The record's analytical energy estimate (kept under ``energy_estimate`` when a meter measured
    ``energy_j_per_sample``) and its provenance."""
    key = "energy_estimate" if "energy_estimate" in record else "energy_j_per_sample"
    return record[key], provenance_of(record, key)


def energy_note(records: Iterable[dict[str, Any]], *, used: str = "energy_j_per_sample") -> str:
    """A sentence on where the energy figures of ``records`` come from, read from the records themselves.

    ``used`` is the key the study reports (``energy_estimate``: it always shows the estimate; a record without
    one has the estimate in ``energy_j_per_sample``)."""
    records = list(records)
    shown, meters, errors = set(), set(), set()
    for record in records:
        key = used if used in record else "energy_j_per_sample"
        shown.add(f"{provenance_of(record, key)} ({record[key].get('method')})")
        primary = record["energy_j_per_sample"]
        if provenance_of(record, "energy_j_per_sample") == "measured":
            meters.add(primary["method"])
        if primary.get("meter_error"):
            errors.add(f"{primary.get('meter')}: {primary['meter_error']}")
    text = f"Energy per sample: {'; '.join(sorted(shown))} for all {len(records)} records."
    if meters:
        text += f" A meter ({', '.join(sorted(meters))}) measured the energy of some records"
        text += ("; the estimate is shown for every row, to compare like with like." if used == "energy_estimate"
                 else ".")
    elif errors:
        text += " An energy meter was found but refused to measure (" + "; ".join(sorted(errors)) + ")."
    else:
        text += " `measure` found no energy meter, so no energy was measured."
    return text


def choose_on_validation(candidates: Sequence[T], score: Callable[[T], float]) -> T:
    """The candidate with the highest validation ``score`` (the earliest on a tie)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    return max(candidates, key=score)  # max keeps the first of equal scores
