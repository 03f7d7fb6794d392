"""The Markdown report: title, comparison table, caveats, environment and the Pareto plot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .comparison import Record, comparison_caption, comparison_rows

if TYPE_CHECKING:
    from .document import Document, Table


def markdown_table(rows: list[dict[str, str]]) -> str:
    """A GitHub-flavoured Markdown table of ``rows``; the first column left-aligned, the rest right."""
    if not rows:
        return ""
    headers = list(rows[0])
    lines = [_markdown_line(headers), _markdown_line([":---"] + ["---:"] * (len(headers) - 1))]
    lines += [_markdown_line(list(row.values())) for row in rows]
    return "\n".join(lines)


def render_markdown(records: list[Record], *, title: str, notes: list[str] | None = None,
                    image: str | None = None, baseline: Record | None = None) -> str:
    """The whole report as Markdown; ``image`` is a path relative to the report, or None for no plot."""
    baseline = records[0] if baseline is None else baseline
    table = markdown_table(comparison_rows(records, baseline))
    parts = [f"# {title}", table, f"*{comparison_caption(baseline)}*"]
    if notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {note}" for note in notes))
    environment = records[0].get("env")
    if environment:
        parts.append(f"## Environment (of {records[0].get('name')!r})\n\n" + "\n".join(
            f"- **{key}**: {_environment_value(value)}" for key, value in environment.items()
        ))
    if image:
        parts.append(f"## Pareto fronts\n\n![Quality vs size and latency]({image})")
    return "\n\n".join(parts) + "\n"


def render_document_markdown(document: Document) -> str:
    """``wattless report`` as Markdown: the tables of the HTML report, plots referenced by file name beside it.

    Strings from records are escaped (``<``, ``>``, ``&``, line breaks), so no record can inject HTML.
    """
    parts = [f"# {_plain(document.title)}", _bullets(document.notes)]
    for group in document.groups:
        parts += [f"## {_plain(group.heading)}",
                  f"{len(group.records)} records; baseline: **{_plain(group.baseline.get('name'))}**",
                  _document_table(group.summary), _bullets(group.notes),
                  f"### Pareto fronts\n\n![{_plain(group.heading)}: quality vs size, latency and energy]"
                  f"({group.plot})",
                  _document_table(group.details)]
        if group.simulated is not None:
            parts.append(_document_table(group.simulated))
        if group.layers:
            parts += ["### Per-layer breakdown", *(_document_table(table, level=4) for table in group.layers)]
        if group.environment:
            parts.append("### Environment of the baseline\n\n" + "\n".join(
                f"- **{_plain(key)}**: {_plain(value)}" for key, value in group.environment))
    parts += ["## Sources", markdown_table(_plain_rows(document.sources.rows))]
    return "\n\n".join(part for part in parts if part) + "\n"


def _document_table(table: Table, level: int = 3) -> str:
    text = f"{'#' * level} {_plain(table.title)}\n\n{markdown_table(_plain_rows(table.rows))}"
    return text + (f"\n\n*{_plain(table.caption)}*" if table.caption else "")


def _plain_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{_plain(key): _plain(value) for key, value in row.items()} for row in rows]


def _bullets(notes: list[str]) -> str:
    return "\n".join(f"- {_plain(note)}" for note in notes)


def _plain(value: Any) -> str:
    """Text that Markdown renderers show as it is: no HTML tags, entities or line breaks."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def _environment_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {inner}" for key, inner in value.items())
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _markdown_line(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
