"""Rendering result records: Rich tables, Pareto plots, and results files (JSON, CSV, Markdown, PNG)."""

from .comparison import comparison_rows, fastest_latency
from .files import write_results
from .format import format_bytes, format_energy, format_seconds_ms
from .markdown import markdown_table, render_markdown
from .plots import pareto_front, pareto_plot
from .tables import comparison_table, ladder_table, layer_table, record_table

__all__ = [
    "comparison_rows",
    "comparison_table",
    "ladder_table",
    "fastest_latency",
    "format_bytes",
    "format_energy",
    "format_seconds_ms",
    "layer_table",
    "markdown_table",
    "pareto_front",
    "pareto_plot",
    "record_table",
    "render_markdown",
    "write_results",
]
