"""``wattless report``'s output folder: ``report.html`` (self-contained), ``report.md`` and its plot PNGs."""

from __future__ import annotations

import os
from pathlib import Path

from .._atomic import write_text_atomic
from ..errors import ConfigError
from .collect import Collection
from .document import build_document, image_paths
from .html import render_html
from .markdown import render_document_markdown
from .plots import pareto_plot

DEFAULT_TITLE = "wattless report"


def write_report(collection: Collection, out_dir: str | os.PathLike, *, title: str = DEFAULT_TITLE,
                 force: bool = False) -> dict[str, Path]:
    """Write the report of ``collection`` into ``out_dir`` (created when its parent exists); each file atomically.

    Returns the paths under ``"html"``, ``"markdown"`` and ``"plots"`` (a list). Raises ConfigError before
    writing anything when a file to write exists (unless ``force``) or the folder cannot be made.
    """
    out = Path(out_dir)
    document = build_document(collection, title=title)
    html_path, markdown_path, plots = out / "report.html", out / "report.md", image_paths(document, out)
    _check_folder(out)
    existing = [path for path in (html_path, markdown_path, *plots) if path.exists()]
    if existing and not force:
        raise ConfigError(f"{str(existing[0])!r} already exists; choose another -o folder or pass --force")
    try:
        out.mkdir(exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create folder {str(out)!r}: {error.strerror}; choose another -o") from None
    images = {}
    for group, path in zip(document.groups, plots, strict=True):
        pareto_plot(group.records, path, baseline_name=str(group.baseline.get("name")), energy=True)
        images[group.plot] = path.read_bytes()
    write_text_atomic(markdown_path, render_document_markdown(document))
    write_text_atomic(html_path, render_html(document, images))
    return {"html": html_path, "markdown": markdown_path, "plots": plots}


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {str(out)!r} is a file, not a folder; choose a folder for the report")
    if not out.exists() and not out.parent.is_dir():
        raise ConfigError(f"folder {str(out.parent)!r} does not exist; create it first or choose another -o")
