"""Text written into Markdown files (reports, the C export's README) so that it renders exactly as it is.

Names come from records, file names and users (model names are free text), so none may turn into markup.
"""

from __future__ import annotations

import re
from typing import Any

_SPECIAL = re.compile(r"([\\`*\[\]|~])")
"""Characters Markdown may read as syntax anywhere in a line: escapes, code, emphasis, links, table cells."""
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
"""An underscore that may open or close emphasis: not between two letters or digits (``state_dict`` is safe)."""
_BLOCK_START = re.compile(r"^(#|[-+=>]|\d+[.)])")
"""What makes a line a heading, list item, quote or setext underline when it starts the line."""


def markdown_text(value: Any, *, line_start: bool = False) -> str:
    """``value`` as Markdown that renders as exactly that text, on one line: no HTML, no emphasis, code, link,
    strike-through or table cell break, no heading; with ``line_start`` (a bullet's text) no list or quote either.

    For every string a record, a file name or a user supplies (model names are free text)."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;")  # no tag, entity or autolink; a lone ">" is text
    text = _UNDERSCORE.sub(r"\\_", _SPECIAL.sub(r"\\\1", text))
    if text.startswith("#") or (line_start and _BLOCK_START.match(text)):
        text = re.sub(r"^(\d*)(.)", r"\1\\\2", text, count=1)
    return text


def markdown_code(value: Any) -> str:
    """``value`` as one inline code span, fenced with more backticks than it holds in a row, on one line."""
    text = " ".join(str(value).split())
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"
