"""Rendering result records: Rich tables, Pareto plots, and results files (JSON, CSV, Markdown, PNG)."""

from .collect import collect_records
from .comparison import comparison_rows, fastest_latency
from .files import write_results
from .format import format_bytes, format_energy, format_seconds_ms
from .html import render_html
from .markdown import markdown_table, render_markdown
from .plots import pareto_front, pareto_plot
from .publish import write_report
from .tables import comparison_table, file_bytes_table, ladder_table, layer_table, record_table

__all__ = [
    "collect_records",
    "comparison_rows",
    "comparison_table",
    "ladder_table",
    "fastest_latency",
    "file_bytes_table",
    "format_bytes",
    "format_energy",
    "format_seconds_ms",
    "layer_table",
    "markdown_table",
    "pareto_front",
    "pareto_plot",
    "record_table",
    "render_html",
    "render_markdown",
    "write_report",
    "write_results",
]
