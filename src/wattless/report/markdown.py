"""The Markdown report: title, comparison table, caveats, environment and the Pareto plot."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .comparison import Record, comparison_caption, comparison_rows

if TYPE_CHECKING:
    from .document import Document, Table


_SPECIAL = re.compile(r"([\\`*\[\]|~])")
"""Characters Markdown may read as syntax anywhere in a line: escapes, code, emphasis, links, table cells."""
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
"""An underscore that may open or close emphasis: not between two letters or digits (``state_dict`` is safe)."""
_BLOCK_START = re.compile(r"^(#|[-+=]|\d+[.)])")
"""What makes a line a heading, list item or setext underline when it starts the line."""


def markdown_text(value: Any, *, line_start: bool = False) -> str:
    """``value`` as Markdown that renders as exactly that text, on one line: no HTML, no emphasis, code, link,
    strike-through or table cell break, no heading; with ``line_start`` (a bullet's text) no list either.

    For every string a record, a file name or a user supplies (model names are free text)."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _UNDERSCORE.sub(r"\\_", _SPECIAL.sub(r"\\\1", text))
    if text.startswith("#") or (line_start and _BLOCK_START.match(text)):
        text = re.sub(r"^(\d*)(.)", r"\1\\\2", text, count=1)
    return text


def markdown_table(rows: list[dict[str, str]]) -> str:
    """A GitHub-flavoured Markdown table of ``rows``; the first column left-aligned, the rest right. Every header
    and cell is escaped (:func:`markdown_text`), so a name holding ``|`` or ``**`` stays one cell of plain text."""
    if not rows:
        return ""
    headers = list(rows[0])
    lines = [_markdown_line([markdown_text(header) for header in headers]),
             _markdown_line([":---"] + ["---:"] * (len(headers) - 1))]
    lines += [_markdown_line([markdown_text(cell) for cell in row.values()]) for row in rows]
    return "\n".join(lines)


def render_markdown(records: list[Record], *, title: str, notes: list[str] | None = None,
                    image: str | None = None, baseline: Record | None = None) -> str:
    """The whole report as Markdown; ``image`` is a path relative to the report, or None for no plot."""
    baseline = records[0] if baseline is None else baseline
    table = markdown_table(comparison_rows(records, baseline))
    parts = [f"# {markdown_text(title)}", table, f"*{markdown_text(comparison_caption(baseline))}*"]
    if notes:
        parts.append("## Notes\n\n" + _bullets(notes))
    environment = records[0].get("env")
    if environment:
        name = markdown_text(repr(str(records[0].get("name"))))
        parts.append(f"## Environment (of {name})\n\n" + "\n".join(
            f"- **{markdown_text(key)}**: {markdown_text(_environment_value(value))}"
            for key, value in environment.items()))
    if image:
        parts.append(f"## Pareto fronts\n\n![Quality vs size and latency]({image})")
    return "\n\n".join(parts) + "\n"


def render_document_markdown(document: Document) -> str:
    """``wattless report`` as Markdown: the tables of the HTML report, plots referenced by file name beside it.

    Strings from records are escaped (:func:`markdown_text`), so no record can inject HTML or Markdown.
    """
    parts = [f"# {markdown_text(document.title)}", _bullets(document.notes)]
    for group in document.groups:
        parts += [f"## {markdown_text(group.heading)}",
                  f"{len(group.records)} records; baseline: **{markdown_text(group.baseline.get('name'))}**",
                  _document_table(group.summary), _bullets(group.notes),
                  f"### Pareto fronts\n\n![{markdown_text(group.heading)}: quality vs size, latency and energy]"
                  f"({group.plot})",
                  _document_table(group.details)]
        if group.simulated is not None:
            parts.append(_document_table(group.simulated))
        if group.layers:
            parts += ["### Per-layer breakdown", *(_document_table(table, level=4) for table in group.layers)]
        if group.environment:
            parts.append("### Environment of the baseline\n\n" + "\n".join(
                f"- **{markdown_text(key)}**: {markdown_text(value)}" for key, value in group.environment))
    parts += ["## Sources", markdown_table(document.sources.rows)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _document_table(table: Table, level: int = 3) -> str:
    text = f"{'#' * level} {markdown_text(table.title)}\n\n{markdown_table(table.rows)}"
    return text + (f"\n\n*{markdown_text(table.caption)}*" if table.caption else "")


def _bullets(notes: list[str]) -> str:
    return "\n".join(f"- {markdown_text(note, line_start=True)}" for note in notes)


def _environment_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {inner}" for key, inner in value.items())
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _markdown_line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
