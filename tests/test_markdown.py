"""Text that goes into Markdown files (reports, the C export's README) renders as exactly that text."""

import html
import re

import pytest
from markdown_it import MarkdownIt

from wattless._markdown import markdown_code, markdown_text

render = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render
"""Markdown as GitHub reads it: CommonMark with GFM tables and strike-through."""


@pytest.mark.parametrize("name", ["**x** | y", "_x_ `c` [l](u) ![i](p.png) ~~s~~", "# h", "<b>b</b> &amp; \\*",
                                  "a__b__c", "state_dict", "x_", "-> >"])
def test_text_renders_as_itself_in_a_paragraph_a_heading_and_a_table_cell(name):
    assert render(markdown_text(name)) == f"<p>{html.escape(name, quote=False)}</p>\n"
    assert render(f"## {markdown_text(name)}") == f"<h2>{html.escape(name, quote=False)}</h2>\n"
    table = render(f"| a | b |\n|---|---|\n| {markdown_text(name)} | z |")
    assert re.findall(r"<td>(.*?)</td>", table) == [html.escape(name, quote=False), "z"]


@pytest.mark.parametrize("name", ["1. item", "- item", "+ item", "> quote", "# heading", "==="])
def test_a_bullets_text_makes_no_list_quote_or_heading(name):
    shown = html.escape(name, quote=False)
    assert render(f"- {markdown_text(name, line_start=True)}") == f"<ul>\n<li>{shown}</li>\n</ul>\n"


def test_line_breaks_become_spaces():
    assert markdown_text("two\nlines\r\n# not a heading") == "two lines # not a heading"


@pytest.mark.parametrize("text", ["plain", "a `tick`", "``double``", "`", "<b>x</b>"])
def test_a_code_span_holds_any_text(text):
    assert render(markdown_code(text)) == f"<p><code>{html.escape(text, quote=False)}</code></p>\n"


def test_the_c_exports_readme_shows_names_as_text(trained_mlp):
    from wattless.runtime.export import generate

    model = trained_mlp.copy()
    model.meta["model"]["name"] = "**mlp** | x"
    model.meta.setdefault("dataset", {})["name"] = "csv:data/*my*_set_.csv"
    files, _ = generate(model)
    page = html.unescape(render(files["README.md"]))
    assert page.startswith("<h1>**mlp** | x for csv:data/*my*_set_.csv</h1>")
    assert "(**mlp** | x for csv:data/*my*_set_.csv, recipe:" in page
    assert "<em>" not in page and "<strong>" not in page
