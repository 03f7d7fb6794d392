"""Rich tables for the terminal: a comparison of variants, one measured record, per-layer MACs."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from .comparison import Record, comparison_caption, comparison_rows, energy_per_sample, record_task
from .format import (
    MISSING,
    format_bytes,
    format_count,
    format_energy,
    format_number,
    format_ratio,
    format_recipe,
    format_seconds_ms,
    format_share,
    format_text,
)
from .narrow import narrow_tables


def comparison_table(records: list[Record], *, baseline: Record | None = None, title: str | None = None,
                     width: int = 80) -> Group:
    """One row per record with its metric, size, latency and energy, and their ratios to the baseline, in tables
    of at most ``width`` columns (each repeating the variant's name).

    The cells are exactly those of :func:`comparison_rows`; the baseline (default: the first record)
    is shown in bold when it is one of the rows.
    """
    baseline = records[0] if baseline is None and records else baseline
    rows = comparison_rows(records, baseline)
    headers, notes = terminal_headers(list(rows[0]) if rows else ["Variant"])
    caption = " ".join([comparison_caption(baseline), *notes]) if baseline else None
    return narrow_tables(headers, [list(row.values()) for row in rows], title=title, width=width, caption=caption,
                         styles=["bold" if record is baseline else None for record in records])


_SHORT_HEADERS = {"Accuracy (%)": "Acc (%)", "Δ acc (pts)": "Δ pts"}


def terminal_headers(headers: list[str]) -> tuple[list[str], list[str]]:
    """Shorter comparison headers for an 80-column terminal (``Latency b1 (1 thread)`` -> ``b1 latency``,
    ``Speed-up b1`` -> ``× b1``), and the notes their parentheses held, for the caption."""
    short, notes = [], []
    for header in headers:
        head, _, note = header.partition(" (")
        if head.startswith("Latency b"):
            short.append(f"{head.removeprefix('Latency ')} latency")
        elif head.startswith("Speed-up b"):
            short.append(f"× {head.removeprefix('Speed-up ')}")
        elif head == "Energy/sample":
            short.append("Energy/sample")
        else:
            short.append(_SHORT_HEADERS.get(header, header))
            continue
        if note and f"{head.split(' ')[0]}: {note.rstrip(')')}." not in notes:
            notes.append(f"{head.split(' ')[0]}: {note.rstrip(')')}.")
    return short, notes


def ladder_table(baseline: Record, rows: list[dict[str, Any]], *, max_drop: float, objective: str,
                 width: int = 80) -> Group:
    """Every candidate ``compress --max-drop`` tried: status, drop on validation and test (points, or % of
    RMSE), then the comparison cells of its measured record against the original."""
    measured = [row["record"] for row in rows if "record" in row]
    compared = comparison_rows([baseline, *measured], baseline)
    headers = list(compared[0])[1:]
    cells = iter(compared[1:])
    table_rows = []
    for row in rows:
        values = list(next(cells).values())[1:] if "record" in row else [MISSING] * len(headers)
        notes = [f"on {row['engine']}"] if row.get("engine") else []  # latency: where it ran
        notes += [f"within the noise of {', '.join(map(str, row['tied_with']))}"] if row.get("tied_with") else []
        status = row["status"] + (f" ({'; '.join(notes)})" if notes else "")
        table_rows.append([row["candidate"], status, format_number(row.get("val_drop"), ".2f"),
                           format_number(row.get("test_drop"), ".2f"), *values])
    ranked = next((row.get("objective_provenance") for row in rows if row.get("objective_provenance")), None)
    caption = comparison_caption(baseline) + (f" Energy ranked on {ranked} figures only." if ranked else "")
    if any(row.get("objective_range") for row in rows):
        caption += " Latencies whose spreads overlap are tied: the smaller drop wins, then the smaller file."
    return narrow_tables(["Candidate", "Status", "Val drop", "Test drop", *headers], table_rows, width=width,
                         title=f"Candidates for at most {max_drop:g} lost, best {objective} first", caption=caption,
                         left=2, styles=["bold" if row["status"] == "chosen" else None for row in rows])


def record_table(record: Record) -> Table:
    """Everything measured about one model variant, with a nested latency table (ms)."""
    table = Table(title=record.get("name"), show_header=False)
    table.add_column("Quantity", style="bold")
    table.add_column("Value")
    for label, value in _record_lines(record):
        table.add_row(label, value)
    latencies = record.get("latency_ms") or []
    table.add_row("latency", _latency_table(latencies) if latencies else MISSING)
    return table


def layer_table(layers: list[dict[str, Any]], width: int = 80) -> Group:
    """Per-layer shape, parameters (non-zeros, weight/activation bits and stored bytes when known), MACs and
    estimated energy, with each layer's share of all MACs and of the energy (%)."""
    total_macs = sum(layer.get("macs") or 0 for layer in layers)
    total_energy = sum(layer.get("energy_j") or 0 for layer in layers)

    def total(key: str) -> float:
        return sum(layer.get(key) or 0 for layer in layers)

    # (header, key the column needs, cell of a layer, cell of the total row)
    columns = [
        ("Shape", "shape", lambda r: "x".join(map(str, r["shape"])) if r.get("shape") else MISSING, ""),
        ("Params", None, lambda r: format_count(r.get("params")), format_count(total("params"))),
        ("Nonzero", "nonzero", lambda r: format_count(r.get("nonzero")), format_count(total("nonzero"))),
        ("W bits", "weight_bits", lambda r: format_number(r.get("weight_bits"), ".3g"), ""),
        ("A bits", "act_bits", lambda r: format_number(r.get("act_bits"), ".3g"), ""),
        ("Bytes", "bytes", lambda r: format_bytes(r.get("bytes")), format_bytes(total("bytes"))),
        ("MACs", None, lambda r: format_count(r.get("macs")), format_count(total_macs)),
        ("MAC share (%)", None, lambda r: format_share(r.get("macs"), total_macs), "100.0" if total_macs else MISSING),
        ("Energy", "energy_j", lambda r: format_energy(r.get("energy_j")), format_energy(total_energy)),
        ("Energy share (%)", "energy_j", lambda r: format_share(r.get("energy_j"), total_energy), "100.0"),
        *_simulated_columns(layers),
    ]
    columns = [c for c in columns if c[1] is None or any(layer.get(c[1]) is not None for layer in layers)]
    rows = [[format_text(layer.get("name")), format_text(layer.get("type")),
             *(cell(layer) for _, _, cell, _ in columns)] for layer in layers]
    rows.append(["total", "", *(total_cell for *_, total_cell in columns)])
    return narrow_tables(["Layer", "Type", *(header for header, *_ in columns)], rows, title="Per layer", keys=2,
                         width=width, styles=[*[None] * len(layers), "bold"])


def file_bytes_table(found: dict[str, Any], width: int = 80) -> Group:
    """Where a file's bytes go (``inspect``'s ``file_bytes``): the header, then per layer its weight's positions
    and codes, tables, biases and other tensors, beside the entropy floor of the symbols and file / floor."""
    parts = ("positions", "codes", "tables", "biases", "other", "bytes")
    floors = ("floor_positions", "floor_codes", "floor_biases", "floor")

    def cells(row: dict[str, Any]) -> list[str]:
        ratio = row["bytes"] / row["floor"] if row["floor"] else None
        return [f"{row[key]:,}" for key in parts] + [f"{row[key]:,.0f}" for key in floors] + [_ratio(ratio)]

    header = found["header"]
    total = found["total"]
    rows = [["header", *[""] * 5, f"{header['bytes']:,}", *[""] * 4, ""]]
    rows += [[row["name"] or "(top)", *cells(row)] for row in found["layers"]]
    rows.append(["total", *[f"{sum(row[key] for row in found['layers']):,}" for key in parts[:-1]],
                 f"{total['bytes']:,}", *[f"{sum(row[key] for row in found['layers']):,.0f}" for key in floors],
                 _ratio(total["ratio"])])
    headers = ["Layer", "Positions", "Codes", "Tables", "Biases", "Other", "Bytes", "Floor pos", "Floor codes",
               "Floor biases", "Floor", "File/floor"]
    caption = (f"Header: {header['safetensors']:,} B safetensors framing + {header['frame']:,} B length and "
               "compressed metadata. Floor: positions n*H(K/n), codes K*H0 (no tables); the context-modelled "
               "mask can go below the i.i.d. positions floor. File / (floor + tables as plain floats): "
               f"{_ratio(total['ratio_with_tables'])}.")
    return narrow_tables(headers, rows, title="Bytes in the file (B)", caption=caption, width=width,
                         styles=[*[None] * (len(rows) - 1), "bold"])


def _ratio(ratio: float | None) -> str:
    return MISSING if ratio is None else f"{ratio:.3f}"


def _simulated_columns(layers: list[dict[str, Any]]) -> list[tuple]:
    """Simulated energy per layer (``inspect --simulate``): compute, on-chip memory, off-chip memory."""
    parts = (("Sim compute", "compute_j"), ("Sim on-chip", "onchip_j"), ("Sim off-chip", "offchip_j"))

    def cell(key):
        return lambda r: format_energy((r.get("simulated") or {}).get(key))

    def total(key):
        return format_energy(sum((layer.get("simulated") or {}).get(key, 0) for layer in layers))

    return [(header, "simulated", cell(key), total(key)) for header, key in parts]


def _record_lines(record: Record) -> list[tuple[str, str]]:
    lines = [(key, format_text(record.get(key))) for key in ("model", "dataset")]
    lines += [("recipe", format_recipe(record.get("recipe"))), ("seed", format_text(record.get("seed")))]
    if record_task(record) == "regression":
        lines += [(key.upper() if key != "r2" else "R²", format_number(record.get(key), ".4g"))
                  for key in ("rmse", "mae", "r2")]
    else:
        accuracy = record.get("accuracy")
        lines.append(("accuracy", MISSING if accuracy is None else f"{100 * accuracy:.2f} %"))
    lines += [
        ("parameters", format_count(record.get("params"))),
        ("non-zero parameters", _nonzero_text(record.get("nonzero_params"), record.get("params"))),
        ("size on disk", _bytes_text(record.get("size_bytes"))),
        ("fp32 state_dict size", _bytes_text(record.get("size_bytes_fp32"))),
        ("compression ratio", format_ratio(record.get("compression_ratio"))),
        ("MACs per sample", format_count(record.get("macs"))),
        ("BOPs per sample", format_count(record.get("bops"))),
        ("energy per sample", _energy_text(record)),
        *_simulated_lines(record),
        ("artifact", format_text(record.get("artifact"))),
    ]
    return lines


def _simulated_lines(record: Record) -> list[tuple[str, str]]:
    """One line per simulated design: energy per sample, latency, and what the simulation leaves out."""
    lines = []
    for design, entry in (record.get("simulated") or {}).items():
        latency = f"{entry['latency_cycles']:,.0f} cycles"
        if entry.get("latency_s") is not None:
            latency += f" ({format_seconds_ms(entry['latency_s'] * 1000)} at {entry['clock_mhz']:g} MHz)"
        notes = "; sparsity not modelled" if not entry.get("sparsity_modelled") else ""
        if entry.get("left_out"):
            notes += f"; {len(entry['left_out'])} layer(s) left out ({entry.get('left_out_share', 0):.1%} of the MACs)"
        if entry.get("warnings"):
            notes += f"; {len(entry['warnings'])} precision warning(s)"
        lines.append((f"simulated on {design}", f"{format_energy(entry['energy_j_per_sample'])}/sample, {latency} "
                                                f"({entry['provenance']['by']}{notes})"))
    return lines


def _latency_table(latencies: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for header in ("engine", "precision"):
        table.add_column(header)
    for header in ("batch", "threads", "median", "p25", "p75"):
        table.add_column(header, justify="right")
    for entry in latencies:
        table.add_row(
            format_text(entry.get("engine")), format_text(entry.get("precision")),
            format_text(entry.get("batch")), format_text(entry.get("threads")),
            *(format_seconds_ms(entry.get(key)) for key in ("median", "p25", "p75")),
        )
    return table


def _nonzero_text(nonzero: int | None, params: int | None) -> str:
    if nonzero is None or not params:
        return format_count(nonzero)
    return f"{nonzero:,} ({100 * nonzero / params:.1f} % of parameters)"


def _bytes_text(n_bytes: int | None) -> str:
    return MISSING if n_bytes is None else f"{format_bytes(n_bytes)} ({n_bytes:,} bytes)"


def _energy_text(record: Record) -> str:
    joules, label = energy_per_sample(record)
    return MISSING if joules is None else f"{format_energy(joules)} ({label})"
