import base64
import html
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.image
import pytest

from wattless.errors import ConfigError
from wattless.report import collect_records, write_report
from wattless.report.plots import DPI

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert("x")</script>'
URL_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href"}


class Parsed(HTMLParser):
    """Every tag, every URL-carrying attribute, all text of a page, and each table cell as ``[tag, text]``
    (non-breaking spaces read as spaces)."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.urls, self.text, self.cells, self._in_cell = [], [], [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.urls += [value for name, value in attrs if name in URL_ATTRIBUTES]
        if tag in ("th", "td"):
            self.cells.append([tag, ""])
            self._in_cell = True

    def handle_endtag(self, tag):
        self._in_cell = self._in_cell and tag not in ("th", "td")

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells[-1][1] += data.replace("\xa0", " ")

    def cell_texts(self, tag: str) -> list[str]:
        return [text for kind, text in self.cells if kind == tag]


def _latency(engine, precision, batch, median):
    return {"engine": engine, "precision": precision, "batch": batch, "threads": 1, "median": median,
            "p25": 0.9 * median, "p75": 1.1 * median}


def _records():
    """fp32 and int8 on digits (with layers), a record full of markup, and two regression records."""
    base = {"model": "mlp", "dataset": "digits", "task": "classification", "seed": 0, "params": 100_000,
            "size_bytes_fp32": 400_000, "env": {"cpu": "Test CPU", "threads": 1}}
    fp32 = {**base, "name": "fp32", "recipe": [], "accuracy": 0.95, "size_bytes": 400_000, "compression_ratio": 1.0,
            "latency_ms": [_latency("torch", "fp32", 1, 1.0), _latency("torch", "fp32", 256, 20.0)],
            "macs_per_layer": [{"name": "fc1", "type": "Linear", "params": 75_000, "macs": 75_000},
                               {"name": "fc2", "type": "Linear", "params": 25_000, "macs": 25_000}],
            "energy_j_per_sample": {"value": 4e-6, "method": "estimate-45nm", "batch": 1,
                                    "layers": [{"name": "fc1", "j": 3e-6}, {"name": "fc2", "j": 1e-6}]}}
    int8 = {**base, "name": "int8", "recipe": ["quantize.int8"], "accuracy": 0.948, "size_bytes": 100_000,
            "compression_ratio": 4.0, "latency_ms": [_latency("torch", "fp32", 1, 0.9),
                                                     _latency("onnxruntime", "int8", 1, 0.3)],
            "energy_j_per_sample": {"value": 1e-6, "method": "estimate-45nm", "batch": 1},
            "simulated": {"edge_tpu_like": {"energy_j_per_sample": 3.7e-6, "latency_cycles": 5564.0,
                                            "latency_s": 1.1128e-5, "warnings": ["fc1: narrowed"],
                                            "provenance": {"kind": "simulated",
                                                           "by": "ZigZag 3.9.1 on edge_tpu_like"}}}}
    hostile = {**int8, "name": HOSTILE, "model": '"><img src=x onerror=alert(1)>', "recipe": "<i>r</i>",
               "env": {"cpu": "<b>cpu</b>"}, "macs_per_layer": [{"name": "<td>evil", "macs": 5, "params": 5}],
               "energy_j_per_sample": {"value": 2e-6, "method": "rapl"}}
    regression = [{"name": name, "dataset": "diabetes", "task": "regression", "rmse": rmse, "size_bytes": size,
                   "latency_ms": [_latency("torch", "fp32", 1, 0.05)]}
                  for name, rmse, size in (("fp32", 50.0, 8000), ("int4", 53.1, 1000))]
    return [fp32, int8, hostile, *regression]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "runs.json"
    path.write_text(json.dumps(_records()))
    return path


@pytest.fixture(scope="module")
def report(runs):
    """The report, written once for the tests that only read it."""
    return write_report(collect_records([runs]), runs.parent / "report", title="Test <report>")


def test_writes_html_markdown_and_one_plot_per_group(runs, report):
    folder = runs.parent / "report"
    assert report == {"html": folder / "report.html", "markdown": folder / "report.md",
                      "plots": [folder / "pareto-g1-digits.png", folder / "pareto-g2-diabetes.png"]}
    assert sorted(p.name for p in folder.iterdir()) == ["pareto-g1-digits.png", "pareto-g2-diabetes.png",
                                                        "report.html", "report.md"]


def test_html_loads_nothing_from_outside_the_file(report):
    text = report["html"].read_text()
    page = Parsed(text)
    assert page.urls, "expected images and anchors"
    for url in page.urls:
        assert url.startswith(("data:", "#")), url
    for marker in ("http://", "https://", 'src="//', "url("):
        assert marker not in text
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "iframe", "object", "embed", "base", "form"}
    assert all(attrs.get("rel") == "icon" for tag, attrs in page.tags if tag == "link")
    policy = next(attrs["content"] for tag, attrs in page.tags if attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy


def test_every_record_string_is_escaped(report):
    page = Parsed(report["html"].read_text())
    text = "".join(page.text)
    # Escaped markup reaches the parser as text; unescaped, it would have become tags.
    for shown in (HOSTILE, '"><img src=x onerror=alert(1)>', "<i>r</i>", "<td>evil", "<b>cpu</b>", "Test <report>"):
        assert shown in text, shown
    assert not {tag for tag, _ in page.tags} & {"script", "b", "i"}
    assert [attrs["alt"] for tag, attrs in page.tags if tag == "img"] == [
        "classification quality against size, latency and energy per sample for digits",
        "regression quality against size, latency and energy per sample for diabetes"]
    markdown = report["markdown"].read_text()
    assert "<script>" not in markdown and "<b>" not in markdown and "<img" not in markdown
    assert "&lt;script>" in markdown


def test_images_are_png_plots_with_three_panels(report):
    page = Parsed(report["html"].read_text())
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2
    for uri, path in zip(images, report["plots"], strict=True):
        data = base64.b64decode(uri.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_MAGIC) and data == path.read_bytes()
        height, width, _ = matplotlib.image.imread(io.BytesIO(data), format="png").shape
        assert (width, height) == pytest.approx((16.5 * DPI, 4.5 * DPI), abs=2)


def test_tables_show_quality_size_latency_energy_and_layers(report):
    page = Parsed(report["html"].read_text())
    headers, cells = page.cell_texts("th"), page.cell_texts("td")
    for header in ("Accuracy (%)", "Size", "Smaller than state_dict", "Latency b1 (1 thread)",
                   "Latency b256 (1 thread)", "Speed-up b1", "Energy/sample", "RMSE", "MAC share (%)",
                   "Energy share (%)"):
        assert header in headers, header
    assert "0.300 ms (ort int8)" in cells  # fastest batch-1 engine of int8
    assert "4.0x" in cells  # int8's compression ratio and size ratio
    assert '<td class="n">75.0</td>' in report["html"].read_text()  # fc1's share of MACs and of energy
    assert "Layers of fp32" in "".join(page.text)


def test_different_energy_methods_are_labelled_and_noted(report):
    cells = Parsed(report["html"].read_text()).cell_texts("td")
    assert "2 µJ (rapl)" in cells and "4 µJ (estimate-45nm, b1)" in cells
    for text in (report["html"].read_text(), report["markdown"].read_text()):
        assert "Energy was obtained by different methods (estimate-45nm, rapl)" in text
        assert "Energy labelled estimate-45nm is an analytical estimate" in text  # the method named, not cut off
        assert "…" not in text
    assert "2 µJ (rapl)" in report["markdown"].read_text()


def test_markdown_has_the_tables_and_references_the_plots_beside_it(report):
    markdown = report["markdown"].read_text()
    assert markdown.startswith("# Test &lt;report>\n")
    for path in report["plots"]:
        assert f"]({path.name})" in markdown
    assert "| Variant | Accuracy (%) |" in markdown and "| Variant | RMSE |" in markdown
    assert "#### Layers of fp32" in markdown


def test_refuses_to_overwrite_any_of_its_files_unless_forced(tmp_path, runs, report):
    collection = collect_records([runs])
    for name in ("report.html", "report.md", "pareto-g2-diabetes.png"):
        folder = tmp_path / name.replace(".", "-")
        folder.mkdir()
        (folder / name).write_text("mine")
        with pytest.raises(ConfigError, match=f"{name}' already exists"):
            write_report(collection, folder)
        assert [p.name for p in folder.iterdir()] == [name] and (folder / name).read_text() == "mine"
    write_report(collection, folder, title="Again", force=True)
    assert "<h1>Again</h1>" in (folder / "report.html").read_text()
    assert (folder / "pareto-g2-diabetes.png").read_bytes().startswith(PNG_MAGIC)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_refuses_a_missing_parent_folder_or_a_file(tmp_path, runs):
    collection = collect_records([runs])
    with pytest.raises(ConfigError, match="does not exist"):
        write_report(collection, tmp_path / "no" / "such")
    with pytest.raises(ConfigError, match="is a file"):
        write_report(collection, runs)
    assert not (tmp_path / "no").exists()


def test_text_that_looks_like_mathtext_is_drawn_as_text(tmp_path):
    math = r"$\frac{$"
    records = [{"name": math, "dataset": math, "accuracy": 0.9, "size_bytes": 10,
                "energy_j_per_sample": {"value": 1e-6, "method": math}},
               {"name": "b", "dataset": math, "accuracy": 0.8, "size_bytes": 5,
                "energy_j_per_sample": {"value": 1e-6, "method": "other"}}]
    runs = tmp_path / "r.json"
    runs.write_text(json.dumps(records))
    files = write_report(collect_records([runs]), tmp_path / "out")
    assert files["plots"][0].read_bytes().startswith(PNG_MAGIC)


def _browser() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def _run_browser(tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([_browser(), *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def _console_lines(stderr: str) -> list[str]:
    """Console messages (errors, CSP violations, blocked loads) Chromium logged to stderr."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


_HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>harness</title></head><body>
<pre id="result">pending</pre><iframe id="report" src="{url}" width="1200" height="800"></iframe>
<script>
window.addEventListener("load", () => {{
  const doc = document.getElementById("report").contentDocument;
  const images = Array.from(doc.images);
  document.getElementById("result").textContent = JSON.stringify({{title: doc.title, images: images.length,
    decoded: images.filter(image => image.complete && image.naturalWidth > 0).length}});
}});
</script></body></html>"""


@pytest.mark.skipif(_browser() is None, reason="no chromium, chromium-browser or google-chrome on PATH "
                                               "(Debian: apt-get install -y chromium)")
def test_report_opens_in_a_headless_browser_without_errors(tmp_path, report):
    url = report["html"].as_uri()
    shown = _run_browser(tmp_path, "--dump-dom", url)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "<title>Test &lt;report&gt;</title>" in shown.stdout and shown.stdout.count("<table") >= 5
    assert "<h1>Test &lt;report&gt;</h1>" in shown.stdout
    assert _console_lines(shown.stderr) == []

    # The report itself runs no script, so a harness page inspects it: every image decoded.
    harness = tmp_path / "harness.html"
    harness.write_text(_HARNESS.format(url=url))
    inspected = _run_browser(tmp_path, "--allow-file-access-from-files", "--dump-dom", harness.as_uri())
    result = inspected.stdout.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]
    assert json.loads(html.unescape(result)) == {"title": "Test <report>", "images": 2, "decoded": 2}
    assert _console_lines(inspected.stderr) == []

    screenshot = tmp_path / "shot.png"
    shot = _run_browser(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000", url)
    assert shot.returncode == 0 and screenshot.read_bytes().startswith(PNG_MAGIC)
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_simulated_figures_name_their_tool_version_and_design(report):
    for path in (report["markdown"], report["html"]):
        text = path.read_text()
        assert "Simulated on accelerator designs" in text and "ZigZag 3.9.1 on edge_tpu_like" in text
        assert "sparsity is not modelled" in text and "5,564" in text


def _demo_like_records():
    """The demo's three variants as ``wattless report`` reads them from results.json: the widest summary table."""
    def latencies(precision, *medians):
        return [_latency(engine, precision, batch, median) for (engine, precision, batch), median in
                zip([("torch", "fp32", 1), ("onnxruntime", precision, 1), ("torch", "fp32", 256),
                     ("onnxruntime", precision, 256)], medians, strict=True)]

    base = {"model": "mlp", "dataset": "digits", "task": "classification", "seed": 0, "params": 50_826,
            "macs": 50_432, "bops": 51_642_368, "size_bytes_fp32": 203_776, "env": {"cpu": "Test CPU"},
            "source": "/home/someone/projects/compression/runs/demo/results.json"}
    records = []
    for name, precision, recipe, accuracy, size, medians, joules in (
            ("fp32", "fp32", None, 0.8524, 188_928, (0.044, 0.017, 0.47, 0.315), 3.28e-5),
            ("int8", "int8", "quantize.int8(calibration=minmax,engine=onnxruntime,format=QDQ,per_channel=True)",
             0.8440, 64_819, (0.045, 0.020, 0.48, 0.231), 8.33e-6),
            ("pruned80", "fp32", "prune.magnitude(finetune_epochs=10,layer_sparsity={},lr=0.001,schedule=oneshot,"
             "scope=global,sparsity=0.8,steps=3)", 0.8301, 40_448, (0.046, 0.017, 0.47, 0.323), 3.28e-5)):
        records.append({**base, "name": name, "recipe": recipe, "accuracy": accuracy, "size_bytes": size,
                        "compression_ratio": 203_776 / size, "latency_ms": latencies(precision, *medians),
                        "energy_j_per_sample": {"value": joules, "method": "estimate-45nm", "batch": 1}})
    return records


_LAYOUT_HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>layout</title></head>
<body style="margin:0"><pre id="result">pending</pre>
<iframe id="report" src="{url}" width="{width}" height="900" style="border:0;display:block"></iframe>
<script>
window.addEventListener("load", () => {{
  const doc = document.getElementById("report").contentDocument;
  const boxes = Array.from(doc.querySelectorAll("table")).map(table => {{
    const box = table.parentElement, style = doc.defaultView.getComputedStyle(box);
    const title = box.previousElementSibling;
    return {{title: title ? title.textContent : "", scrolls: style.overflowX === "auto",
             fits: box.scrollWidth <= box.clientWidth, box: box.clientWidth, table: table.offsetWidth}};
  }});
  const page = doc.documentElement;
  document.getElementById("result").textContent = JSON.stringify({{
    viewport: page.clientWidth, overflow: page.scrollWidth - page.clientWidth, boxes}});
}});
</script></body></html>"""


@pytest.mark.skipif(_browser() is None, reason="no chromium, chromium-browser or google-chrome on PATH "
                                               "(Debian: apt-get install -y chromium)")
def test_at_1280_pixels_the_summary_fits_and_nothing_overflows_the_page(tmp_path):
    runs = tmp_path / "results.json"
    runs.write_text(json.dumps(_demo_like_records()))
    report = write_report(collect_records([runs]), tmp_path / "report")
    harness = tmp_path / "layout.html"
    harness.write_text(_LAYOUT_HARNESS.format(url=report["html"].as_uri(), width=1280))
    shown = _run_browser(tmp_path, "--allow-file-access-from-files", "--window-size=1300,1000", "--dump-dom",
                         harness.as_uri())
    result = json.loads(html.unescape(shown.stdout.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]))
    assert 1200 <= result["viewport"] <= 1280 and result["overflow"] == 0, result  # no page-wide scrolling
    summary = next(box for box in result["boxes"] if box["title"] == "Summary")
    assert summary["fits"] and summary["table"] <= summary["box"], summary  # every column visible
    assert all(box["scrolls"] for box in result["boxes"]), result  # a wider table would scroll in its own box


def test_markdown_in_names_is_shown_as_text_in_both_reports(tmp_path, markdown_names, gfm):
    records = [{"name": name, "model": name, "dataset": "digits", "recipe": "**r**" if position else None,
                "accuracy": 0.9, "size_bytes": 1000 + position, "env": {"cpu": "_c_ | `d`"}}
               for position, name in enumerate(markdown_names)]
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps(records))
    report = write_report(collect_records([runs]), tmp_path / "report", title="# *T*")
    shown = [" ".join(name.split()) for name in markdown_names]
    page = gfm(report["markdown"].read_text())
    cells = [html.unescape(cell) for cell in re.findall(r'<td style="text-align:left">(.*?)</td>', page)]
    assert cells[:len(shown)] == shown  # the summary: one cell per variant, as typed
    assert cells[len(shown):2 * len(shown)] == shown  # the records table
    for tag in ("<em>", "<code>", "<a ", "<s>", "<del>", "<b>", "<ol>"):
        assert tag not in page.replace("<p><em>Δ and ratios", ""), tag  # only the caption is italic
    assert page.count("<img") == 1  # the report's own plot
    assert html.unescape(page).startswith("<h1># *T*</h1>")
    assert "baseline: <strong>**x** | y</strong>" in html.unescape(page)
    assert "<li><strong>cpu</strong>: _c_ | `d`</li>" in html.unescape(page)
    html_cells = Parsed(report["html"].read_text()).cell_texts("td")
    assert all(name in html_cells for name in markdown_names[:-1])  # the HTML escapes, it does not reformat
