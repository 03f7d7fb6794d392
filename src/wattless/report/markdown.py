"""The Markdown report: title, comparison table, caveats, environment and the Pareto plot."""

from __future__ import annotations

from typing import Any

from .comparison import Record, comparison_caption, comparison_rows


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


def _environment_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {inner}" for key, inner in value.items())
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _markdown_line(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
