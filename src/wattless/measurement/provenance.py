"""Typed result records whose figures each say how they were obtained.

A record stays one JSON object with the stable keys of ARCHITECTURE.md (``accuracy``, ``size_bytes``,
``latency_ms``, ``energy_j_per_sample``, ...), so scripts keep working, plus (schema version 2):

- ``provenance``: figure key -> ``{"kind", "by"}``, ``kind`` one of :data:`KINDS`:
  ``measured`` (by an engine, a meter, a file, or a count of the model's own layers or graph), ``estimated``
  (by a model of the hardware, e.g. the 45 nm table), ``simulated`` (by a simulator and an architecture), or
  ``declared`` (copied from metadata written earlier, not re-measured);
- ``size_bytes_original`` and ``compression_ratio_original``: against the fp32 file of the model the
  compression started from (``compression_ratio`` compares with the fp32 file of the record's own architecture).

:class:`RecordSchema` types the keys; :func:`make_record` validates a record against it. Rankings compare only
figures of one provenance (:func:`energy_value`, :func:`comparable_energy`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 2
KINDS = ("measured", "estimated", "simulated", "declared")
Kind = Literal["measured", "estimated", "simulated", "declared"]


class Provenance(BaseModel):
    """How one figure was obtained: its kind and what produced it (engine, meter, file, model, tool)."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    by: str


class LatencyRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    engine: str
    batch: int = Field(ge=1)
    threads: int = Field(ge=1)
    median: float = Field(ge=0)
    p25: float = Field(ge=0)
    p75: float = Field(ge=0)


class Energy(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: float = Field(ge=0)
    method: str


class RecordSchema(BaseModel):
    """The typed keys of a result record (others are allowed: per-layer tables, stage names, ...)."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = SCHEMA_VERSION
    model: str | None = None
    dataset: str | None = None
    task: str | None = None
    accuracy: float | None = Field(None, ge=0, le=1)
    rmse: float | None = Field(None, ge=0)
    params: int | None = Field(None, ge=0)
    nonzero_params: int | None = Field(None, ge=0)
    size_bytes: int | None = Field(None, ge=0)
    size_bytes_fp32: int | None = Field(None, ge=0)
    compression_ratio: float | None = Field(None, gt=0)
    size_bytes_original: int | None = Field(None, ge=0)
    compression_ratio_original: float | None = Field(None, gt=0)
    macs: int | None = Field(None, ge=0)
    bops: int | None = Field(None, ge=0)
    latency_ms: list[LatencyRow] = Field(default_factory=list)
    energy_j_per_sample: Energy | None = None
    provenance: dict[str, Provenance] = Field(default_factory=dict)


def make_record(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as a schema-version-2 record, after checking every typed key (a wattless bug if one is wrong)."""
    record = {"schema_version": SCHEMA_VERSION, **fields}
    try:
        RecordSchema.model_validate(record)
    except ValidationError as error:
        raise RuntimeError(f"a measured record is malformed: {error.errors()[0]}") from error
    missing = [key for key in ("accuracy", "rmse", "size_bytes", "params", "macs", "latency_ms", "energy_j_per_sample")
               if record.get(key) not in (None, []) and key not in record["provenance"]]
    if missing:
        raise RuntimeError(f"a measured record has figures without provenance: {missing}")
    return record


def figure(kind: Kind, by: str) -> dict[str, str]:
    """One provenance entry."""
    return {"kind": kind, "by": by}


def provenance_of(record: Mapping[str, Any], key: str) -> str:
    """The provenance kind of figure ``key``: the record's own entry, or (records written before schema 2)
    inferred: an energy method ``estimate-*`` is estimated, a meter's is measured; sizes, quality, latency and
    counts came from running or reading real artifacts, so they are measured."""
    entry = (record.get("provenance") or {}).get(key)
    if isinstance(entry, Mapping) and entry.get("kind") in KINDS:
        return entry["kind"]
    if key == "energy_j_per_sample":
        energy = record.get(key) or {}
        if energy.get("provenance") in KINDS:
            return energy["provenance"]
        return "estimated" if str(energy.get("method", "")).startswith("estimate") else "measured"
    return "measured"


def energy_value(record: Mapping[str, Any], kind: str = "estimated") -> float | None:
    """Joules per sample of provenance ``kind`` (``estimated`` or ``measured``), or None when the record has none:
    a measured record keeps its estimate under ``energy_estimate``."""
    energy = record.get("energy_j_per_sample") or {}
    if provenance_of(record, "energy_j_per_sample") == kind:
        return float(energy["value"])
    estimate = record.get("energy_estimate")
    if kind == "estimated" and isinstance(estimate, Mapping):
        return float(estimate["value"])
    return None


def comparable_energy(records: Sequence[Mapping[str, Any]]) -> tuple[str, list[float]]:
    """One energy figure per record, all of one provenance: measured when every record has a measured one, else
    the estimate of every record. Returns ``(kind, values)``, so a ranking can say what it compared."""
    if records and all(energy_value(r, "measured") is not None for r in records):
        return "measured", [energy_value(r, "measured") for r in records]
    return "estimated", [energy_value(r, "estimated") for r in records]
