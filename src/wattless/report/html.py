"""The HTML report: one self-contained file with inline CSS and plots as PNG data URIs.

No script, no font and no URL outside the file: a Content-Security-Policy says so to the browser too.
Every string that comes from a record is escaped, since records come from files a user may not control.
"""

from __future__ import annotations

import base64
import re
from html import escape

from .document import Document, Group, Table

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:1200px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2.2rem}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
nav ul{margin:.3rem 0;padding-left:1.2rem}a{color:#0969da}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.4rem 0 .8rem;font-variant-numeric:tabular-nums;font-size:.9rem}
.caption{color:#57606a;font-size:.82rem;margin:-.5rem 0 .8rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem}
th{background:#f6f8fa;text-align:center}td.n{text-align:right}.nw{white-space:nowrap}
tr.baseline td{font-weight:600}tr.total td{border-top:2px solid #8c959f}
.notes li{margin:.2rem 0}.muted{color:#57606a;font-size:.85rem}
img{max-width:100%;height:auto;border:1px solid #d0d7de}
details{margin:.3rem 0}summary{cursor:pointer}
dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem;font-size:.88rem}dt{font-weight:600}dd{margin:0}
"""
_NUMERIC = re.compile(r"^[-+]?[\d.,]+(?:$|[ x%])|^–$")
"""Cells right-aligned as numbers: ``"95.82"``, ``"+0.10"``, ``"3.4x"``, ``"187.3 KB"``, the missing mark."""
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def render_html(document: Document, images: dict[str, bytes]) -> str:
    """The whole report as one HTML page; ``images`` maps each group's plot file name to its PNG bytes."""
    toc = "".join(f'<li><a href="#{group.anchor}">{escape(group.heading)}</a> '
                  f'<span class="muted">({len(group.records)} records)</span></li>' for group in document.groups)
    parts = [
        f"<h1>{escape(document.title)}</h1>",
        f"<nav><strong>Data sets</strong><ul>{toc}</ul></nav>",
        _notes(document.notes),
        *(_group(group, images.get(group.plot)) for group in document.groups),
        '<h2 id="sources">Sources</h2>',
        _table(document.sources),
    ]
    body = "\n".join(part for part in parts if part)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'  # no favicon request either
        f"<title>{escape(document.title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _group(group: Group, png: bytes | None) -> str:
    baseline_name = str(group.baseline.get("name"))
    parts = [
        f'<section id="{escape(group.anchor)}">',
        f"<h2>{escape(group.heading)}</h2>",
        f'<p class="muted">{len(group.records)} records; baseline: <strong>{escape(baseline_name)}</strong></p>',
        _table(group.summary, highlight=baseline_name),
        _notes(group.notes),
        "<h3>Pareto fronts</h3>",
        _image(png, f"{group.task} quality against size, latency and energy per sample for {group.dataset}"),
        _table(group.details),
    ]
    if group.simulated is not None:
        parts.append(_table(group.simulated))
    if group.layers:
        parts.append("<h3>Per-layer breakdown</h3>")
        parts += [f"<details{' open' if position == 0 else ''}><summary>{escape(table.title)}</summary>"
                  f"{_table(table, titled=False)}</details>" for position, table in enumerate(group.layers)]
    if group.environment:
        items = "".join(f"<dt>{escape(key)}</dt><dd>{escape(value)}</dd>" for key, value in group.environment)
        parts.append(f"<h3>Environment of the baseline</h3><dl>{items}</dl>")
    parts.append("</section>")
    return "\n".join(parts)


def _table(table: Table, *, highlight: str | None = None, titled: bool = True) -> str:
    if not table.rows:
        return ""
    headers = list(table.rows[0])
    head = "".join(f'<th scope="col">{_header(header)}</th>' for header in headers)
    lines = []
    for row in table.rows:
        first = row[headers[0]]
        css = ' class="baseline"' if first == highlight else ' class="total"' if first == "total" else ""
        cells = f"<td>{_breakable(first, False)}</td>" + "".join(_cell(row[header]) for header in headers[1:])
        lines.append(f"<tr{css}>{cells}</tr>")
    caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
    title = f"<h3>{escape(table.title)}</h3>" if titled else ""
    return (f'{title}<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(lines)}</tbody></table></div>{caption}")


def _cell(text: str) -> str:
    numeric = _NUMERIC.match(text) is not None
    css = ' class="n"' if numeric else ""
    return f"<td{css}>{_breakable(text, numeric)}</td>"


def _header(text: str) -> str:
    """An escaped column header that wraps at spaces but not at hyphens (``Speed-up``)."""
    return " ".join(f'<span class="nw">{escape(word)}</span>' if "-" in word else escape(word)
                    for word in text.split(" "))


def _breakable(text: str, numeric: bool) -> str:
    """Escaped cell text that a narrow page wraps only where it reads well, so a wide table fits the page: a number
    only before its parenthesised note (``0.017 ms (ort fp32)``), never between it and its unit; text at spaces
    and after commas and slashes (recipes, paths)."""
    if not numeric:
        return re.sub(r"([,/])(?=\S)", r"\1<wbr>", escape(text))
    parts = re.split(r" (?=\()", text)
    if len(parts) == 1:
        return escape(text).replace(" ", "&nbsp;")
    return " ".join(f'<span class="nw">{escape(part)}</span>' for part in parts)


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>"


def _image(png: bytes | None, alt: str) -> str:
    if png is None:
        return '<p class="muted">No plot.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
