"""The content of ``wattless report``, built once and rendered twice (HTML and Markdown): tables of display
strings, notes and plot file names, one group per (data set, task)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .collect import Collection, group_records, slug
from .comparison import Record, comparison_caption, comparison_rows
from .format import (
    MISSING,
    format_bytes,
    format_count,
    format_energy,
    format_ratio,
    format_recipe,
    format_share,
    format_text,
)

STATE_DICT_HEADER = "Smaller than state_dict"
"""The summary column of compression ratios, named by its reference: the fp32 ``state_dict`` file, not the baseline."""


@dataclass
class Table:
    """A titled table of display strings; every row has the same keys (the column headers)."""

    title: str
    rows: list[dict[str, str]]
    caption: str | None = None


@dataclass
class Group:
    """The records of one data set and task, compared with one baseline."""

    dataset: str
    task: str
    anchor: str
    records: list[Record]
    baseline: Record
    summary: Table
    details: Table
    layers: list[Table]
    notes: list[str]
    environment: list[tuple[str, str]]
    plot: str
    """File name of the group's Pareto plot (PNG)."""
    simulated: Table | None = None
    """Energy and latency simulated on accelerator designs, when any record has them."""

    @property
    def heading(self) -> str:
        return f"{self.dataset} ({self.task})"


@dataclass
class Document:
    title: str
    groups: list[Group]
    sources: Table
    notes: list[str] = field(default_factory=list)


def build_document(collection: Collection, *, title: str) -> Document:
    """Group the collected records per (data set, task) and lay out every table and note of the report."""
    groups = [_build_group(position, dataset, task, records)
              for position, ((dataset, task), records) in enumerate(group_records(collection.records).items(), 1)]
    counts = Counter(record["source"] for record in collection.records)
    sources = Table("Sources", [{"File": str(path), "Records": str(counts[str(path)])}
                                for path in collection.sources])
    notes = []
    if len(groups) > 1:
        notes.append("Records are grouped per data set and task; each group is compared with its own baseline.")
    if collection.skipped:
        shown = ", ".join(str(path) for path in collection.skipped[:10])
        more = f" and {len(collection.skipped) - 10} more" if len(collection.skipped) > 10 else ""
        notes.append(f"Skipped {len(collection.skipped)} JSON file(s) holding no result records: {shown}{more}.")
    return Document(title, groups, sources, notes)


def choose_baseline(records: list[Record]) -> Record:
    """The first record without a recipe (an uncompressed model), else the first record."""
    return next((record for record in records if not record.get("recipe")), records[0])


def _build_group(position: int, dataset: str, task: str, records: list[Record]) -> Group:
    baseline = choose_baseline(records)
    anchor = f"g{position}-{slug(dataset)}"
    summary = Table("Summary", [_with_compression(row, record)
                                for row, record in zip(comparison_rows(records, baseline), records, strict=True)],
                    f"{comparison_caption(baseline)} {STATE_DICT_HEADER}: how many times smaller than the model's "
                    "fp32 state_dict file (torch.save), whatever the baseline; the baseline's own file may be smaller "
                    "too.")
    layers = [table for record in records if (table := layer_breakdown(record)) is not None]
    return Group(dataset, task, anchor, records, baseline, summary, _details(records), layers,
                 _group_notes(records), _environment(baseline), f"pareto-{anchor}.png", _simulated(records))


def _left_out(entry: dict[str, Any]) -> str:
    """How many layers a partial simulation left out, and their share of the MACs."""
    count = len(entry.get("left_out") or [])
    return f"{count} ({entry.get('left_out_share', 0):.1%} of MACs)" if count else "0"


def _simulated(records: list[Record]) -> Table | None:
    """One row per (record, design) simulated: energy, latency, and what the simulation names and leaves out."""
    rows = []
    for record in records:
        for design, entry in (record.get("simulated") or {}).items():
            seconds = entry.get("latency_s")
            rows.append({"Variant": format_text(record.get("name")), "Design": format_text(design),
                         "Energy/sample": format_energy(entry.get("energy_j_per_sample")),
                         "Latency (cycles)": format_count(round(entry.get("latency_cycles") or 0)),
                         "Latency": MISSING if seconds is None else f"{seconds * 1e3:.4g} ms",
                         "Narrowed layers": str(len(entry.get("warnings") or [])),
                         "Left out": _left_out(entry),
                         "By": format_text((entry.get("provenance") or {}).get("by"))})
    if not rows:
        return None
    return Table("Simulated on accelerator designs", rows, "Simulated figures (ZigZag): sparsity is not modelled and "
                 "a MAC costs the array's energy whatever its bits; narrowed layers ran at the widest precision the "
                 "design holds.")


def _with_compression(row: dict[str, str], record: Record) -> dict[str, str]:
    """The comparison row with a :data:`STATE_DICT_HEADER` column (the record's compression ratio) after
    ``Smaller``."""
    out = {}
    for header, cell in row.items():
        out[header] = cell
        if header == "Smaller":
            out[STATE_DICT_HEADER] = format_ratio(record.get("compression_ratio"))
    return out


def _details(records: list[Record]) -> Table:
    rows = [{
        "Variant": format_text(record.get("name")), "Model": format_text(record.get("model")),
        "Recipe": format_recipe(record.get("recipe")) if record.get("recipe") else "none",
        "Seed": format_text(record.get("seed")), "Params": format_count(record.get("params")),
        "Non-zero": format_count(record.get("nonzero_params")), "MACs": format_count(record.get("macs")),
        "BOPs": format_count(record.get("bops")), "fp32 size": format_bytes(record.get("size_bytes_fp32")),
        "Source": format_text(record.get("source")),
    } for record in records]
    return Table("Records", rows)


def layer_breakdown(record: Record) -> Table | None:
    """Per-layer parameters, MACs and energy of one record, each with its share of the total (%), or None."""
    macs_layers = record.get("macs_per_layer") or []
    energy_layers = (record.get("energy_j_per_sample") or {}).get("layers") or []
    if not macs_layers and not energy_layers:
        return None
    by_name: dict[str, dict[str, Any]] = {}
    for layer in macs_layers:
        by_name.setdefault(str(layer.get("name")), {}).update(layer)
    for layer in energy_layers:
        by_name.setdefault(str(layer.get("name")), {})["j"] = layer.get("j")
    totals = {key: sum(layer.get(key) or 0 for layer in by_name.values()) for key in ("params", "macs", "j")}
    rows = [{
        "Layer": name, "Type": format_text(layer.get("type")), "Params": format_count(layer.get("params")),
        "MACs": format_count(layer.get("macs")), "MAC share (%)": format_share(layer.get("macs"), totals["macs"]),
        "Energy": format_energy(layer.get("j")), "Energy share (%)": format_share(layer.get("j"), totals["j"]),
    } for name, layer in by_name.items()]
    rows.append({"Layer": "total", "Type": "", "Params": format_count(totals["params"]),
                 "MACs": format_count(totals["macs"]), "MAC share (%)": "100.0" if totals["macs"] else MISSING,
                 "Energy": format_energy(totals["j"]) if energy_layers else MISSING,
                 "Energy share (%)": "100.0" if totals["j"] else MISSING})
    method = (record.get("energy_j_per_sample") or {}).get("method")
    caption = f"Energy per sample by layer: {method}." if energy_layers and method else None
    return Table(f"Layers of {record.get('name')}", rows, caption)


def _group_notes(records: list[Record]) -> list[str]:
    notes = []
    methods = sorted({str(energy.get("method") or "unknown method") for record in records
                      if (energy := record.get("energy_j_per_sample") or {}).get("value") is not None})
    if len(methods) > 1:
        notes.append(f"Energy was obtained by different methods ({', '.join(methods)}): each value is labelled "
                     "with its method, no ratio is taken across methods, and the energy plot draws one front "
                     "per method.")
    estimates = [method for method in methods if method.startswith("estimate")]
    if estimates:
        notes.append(f"Energy labelled {' or '.join(estimates)} is an analytical estimate from operation and "
                     "memory-access counts with published per-operation energies, not a measurement.")
    machines = sorted({str((record.get("env") or {}).get("cpu")) for record in records if record.get("env")})
    if len(machines) > 1:
        notes.append(f"Records were measured on different CPUs ({', '.join(machines)}): latency and measured "
                     "energy compare only between records of one machine.")
    unmeasured = [str(record.get("name")) for record in records if not record.get("latency_ms")]
    if unmeasured:
        notes.append(f"No latency was measured for {', '.join(unmeasured)} (e.g. per-step records of compress).")
    return notes


def _environment(record: Record) -> list[tuple[str, str]]:
    def text(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{key} {inner}" for key, inner in value.items())
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    return [(str(key), text(value)) for key, value in (record.get("env") or {}).items()]


def image_paths(document: Document, out_dir: Path) -> list[Path]:
    """The plot files the report writes into ``out_dir``, one per group."""
    return [out_dir / group.plot for group in document.groups]
