import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from wattless.errors import WattlessError
from wattless.report import comparison_rows, write_results


@pytest.fixture
def records(fp32_record, int8_record):
    return [fp32_record, int8_record]


@pytest.fixture
def written(tmp_path, records):
    notes = ["energy is an analytical estimate (45 nm), not a measurement"]
    return write_results(records, tmp_path / "new" / "results", title="MLP on digits", notes=notes)


def test_writes_four_files_into_a_new_folder(tmp_path, written):
    folder = tmp_path / "new" / "results"
    assert written == {"json": folder / "results.json", "csv": folder / "results.csv",
                       "plot": folder / "pareto.png", "markdown": folder / "report.md"}
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["pareto.png", "report.md", "results.csv", "results.json"]


def test_json_round_trips(written, records):
    assert json.loads(written["json"].read_text()) == records


def test_csv_has_flat_columns_and_one_column_per_latency_entry(written):
    table = pd.read_csv(written["csv"])
    assert list(table["name"]) == ["fp32", "int8"]
    for column in ("model", "dataset", "recipe", "seed", "accuracy", "rmse", "params", "nonzero_params",
                   "size_bytes", "size_bytes_fp32", "compression_ratio", "macs", "bops",
                   "energy_j_per_sample", "energy_method"):
        assert column in table.columns, column
    fp32, int8 = table.to_dict("records")
    assert fp32["latency_ms_torch_fp32_b1"] == 1.0
    assert fp32["latency_ms_torch_fp32_b256"] == 20.0
    assert int8["latency_ms_onnxruntime_int8_b1"] == 0.3
    assert pd.isna(fp32["latency_ms_onnxruntime_int8_b1"])  # not measured: an empty cell
    assert int8["recipe"] == "prune.magnitude + quantize.ptq"
    assert int8["energy_j_per_sample"] == 1e-6 and int8["energy_method"] == "estimate-45nm"


def test_csv_names_latency_columns_by_thread_count_when_not_single_threaded(tmp_path, fp32_record):
    fp32_record["latency_ms"].append({"engine": "torch", "precision": "fp32", "batch": 1, "threads": 4,
                                      "median": 0.4})
    paths = write_results([fp32_record], tmp_path, title="t", plot=False)
    row = pd.read_csv(paths["csv"]).iloc[0]
    assert (row["latency_ms_torch_fp32_b1"], row["latency_ms_torch_fp32_b1_t4"]) == (1.0, 0.4)


def test_markdown_holds_the_same_numbers_as_comparison_rows(written, records):
    report = written["markdown"].read_text()
    assert report.startswith("# MLP on digits\n")
    for row in comparison_rows(records):
        assert "| " + " | ".join(row.values()) + " |" in report
    assert "| Variant | Accuracy (%) | Δ acc (pts) |" in report
    assert "-0.20" in report and "4.0x" in report and "3.3x" in report


def test_markdown_has_notes_environment_and_the_plot(written):
    report = written["markdown"].read_text()
    assert "- energy is an analytical estimate (45 nm), not a measurement" in report
    assert "- **cpu**: Test CPU 3000" in report
    assert "- **versions**: torch 2.13.0, onnxruntime 1.22" in report
    assert "](pareto.png)" in report


def test_without_plot_no_png_is_written_or_linked(tmp_path, records):
    paths = write_results(records, tmp_path, title="t", plot=False)
    assert "plot" not in paths and not (tmp_path / "pareto.png").exists()
    assert "pareto.png" not in paths["markdown"].read_text()


def test_overwrites_older_results_and_leaves_other_files(tmp_path, records):
    (tmp_path / "results.json").write_text("[]")
    (tmp_path / "notes.txt").write_text("mine")
    write_results(records, tmp_path, title="t")
    assert len(json.loads((tmp_path / "results.json").read_text())) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_pipes_in_names_do_not_break_the_markdown_table(tmp_path, fp32_record):
    fp32_record["name"] = "prune|int8"
    paths = write_results([fp32_record], tmp_path, title="t", plot=False)
    assert "| prune\\|int8 |" in paths["markdown"].read_text()


def test_markdown_in_names_is_shown_as_text(tmp_path, fp32_record, int8_record, markdown_names, gfm):
    records = [{**(int8_record if position else fp32_record), "name": name, "env": {"cpu_**x**": "# _y_"}}
               for position, name in enumerate(markdown_names)]
    paths = write_results(records, tmp_path, title="**Bold** title", notes=["- a note", "*not emphasis*"],
                          plot=False)
    page = gfm(paths["markdown"].read_text())
    cells = [html.unescape(cell) for cell in re.findall(r'<td style="text-align:left">(.*?)</td>', page)]
    assert cells == [" ".join(name.split()) for name in markdown_names]  # one cell each, as typed
    assert page.count("<em>") == 1 and "<p><em>Δ and ratios vs baseline '**x** | y' (ratio" in html.unescape(page)
    for tag in ("<code>", "<a ", "<img", "<s>", "<del>", "<b>", "<ol>", "<li><ul>"):
        assert tag not in page, tag
    assert [html.unescape(h) for h in re.findall(r"<h\d>(.*?)</h\d>", page)] == [
        "**Bold** title", "Notes", "Environment (of '**x** | y')"]
    assert "<li>- a note</li>" in page and "<li>*not emphasis*</li>" in page
    assert page.count("<strong>") == 1 and "<li><strong>cpu_**x**</strong>: # _y_</li>" in page  # the key's own bold


def test_no_records_or_an_unusable_folder_are_user_errors(tmp_path, records):
    with pytest.raises(WattlessError, match="no result records"):
        write_results([], tmp_path, title="t")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(WattlessError, match="a_file"):
        write_results(records, tmp_path / "a_file" / "out", title="t")


def test_json_writes_numpy_scalars_and_paths_as_plain_values(tmp_path, fp32_record):
    fp32_record["accuracy"] = np.float64(0.95)
    fp32_record["artifact"] = tmp_path / "fp32.wlz"
    paths = write_results([fp32_record], tmp_path, title="t", plot=False)
    saved = json.loads(paths["json"].read_text())[0]
    assert saved["accuracy"] == 0.95 and saved["artifact"] == str(tmp_path / "fp32.wlz")
