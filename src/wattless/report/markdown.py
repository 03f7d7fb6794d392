"""The Markdown report: title, comparison table, caveats, environment and the Pareto plot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._markdown import markdown_text
from .comparison import Record, comparison_caption, comparison_rows

if TYPE_CHECKING:
    from .document import Document, Table


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
