"""The demo writes the promised report files with three measured variants, and never overwrites a user's file."""

import json

import pandas as pd
import pytest
from matplotlib.image import imread

from wattless.api._demo import run_demo
from wattless.api._demo_folder import MANIFEST, check_demo_folder, file_sha256, record_demo_files
from wattless.errors import ConfigError
from wattless.testing import assert_user_error, run_cli


def test_demo_writes_report_files(tmp_path, monkeypatch):
    from wattless.measurement import latency

    timed, time_runner = [], latency.time_runner
    monkeypatch.setattr(latency, "time_runner",
                        lambda runner, **options: timed.append(id(runner)) or time_runner(runner, **options))
    records, files = run_demo(tmp_path / "demo", epochs=3, repeats=3)
    one_round = timed[:len(timed) // 3]  # fp32 and pruned80 on torch and ONNX Runtime, int8 in ONNX Runtime
    assert len(set(one_round)) == 5 and timed == one_round * 3  # the variants alternate within every round
    assert all(len(entry["round_medians"]) == 3 for record in records for entry in record["latency_ms"])
    assert [r["name"] for r in records] == ["fp32", "int8", "pruned80"]
    assert {"markdown", "json", "csv", "plot"} <= set(files)
    assert json.loads(files["json"].read_text())[1]["precision"] == "int8"
    assert list(pd.read_csv(files["csv"])["name"]) == ["fp32", "int8", "pruned80"]
    assert imread(files["plot"]).shape[0] > 100
    report = files["markdown"].read_text()
    assert "pruned80" in report and "estimate" in report and "pareto.png" in report
    assert (tmp_path / "demo" / "int8.onnx").stat().st_size == records[1]["size_bytes"]
    # The manifest lists every file the demo wrote, so a second demo may refresh the folder (`make demo` twice).
    folder = tmp_path / "demo"
    manifest = json.loads((folder / MANIFEST).read_text())["files"]
    assert sorted(manifest) == sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    assert all(manifest[p.name] == file_sha256(p) for p in folder.iterdir() if p.name != MANIFEST)
    check_demo_folder(folder, force=False)


def _demo_folder(folder):
    """A folder as an earlier demo left it: its files and their manifest."""
    folder.mkdir()
    for name in ("fp32.wlz", "report.md", "results.json"):
        (folder / name).write_text(f"demo's {name}")
    record_demo_files(folder, *folder.iterdir())
    return folder


def test_an_earlier_demos_unchanged_output_may_be_refreshed(tmp_path):
    check_demo_folder(tmp_path / "missing", force=False)
    (tmp_path / "empty").mkdir()
    check_demo_folder(tmp_path / "empty", force=False)
    folder = _demo_folder(tmp_path / "demo")
    (folder / ".report.md.0123abcd.tmp").write_text("left by a killed demo")  # our own temporary: not the user's
    check_demo_folder(folder, force=False)


@pytest.mark.parametrize("change", ["edited", "unknown file", "sub-folder", "no manifest", "bad manifest"])
def test_a_folder_holding_anything_else_is_refused_unless_forced(tmp_path, change):
    folder = _demo_folder(tmp_path / "demo")
    if change == "edited":
        (folder / "report.md").write_text("my notes")
    elif change == "unknown file":
        (folder / "notes.txt").write_text("mine")
    elif change == "sub-folder":
        (folder / "plots").mkdir()
    elif change == "no manifest":
        (folder / MANIFEST).unlink()
    else:
        (folder / MANIFEST).write_text("{bad")
    with pytest.raises(ConfigError, match="changed since the demo wrote it" if change == "edited" else
                       "not a file the demo wrote there"):
        check_demo_folder(folder, force=False)
    check_demo_folder(folder, force=True)


def test_demo_refuses_to_overwrite_a_users_file_and_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "fp32.wlz").write_text("keep\n")
    assert_user_error(run_cli("demo", "-q", "-o", "other"), "other/fp32.wlz", "--force")
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["fp32.wlz"]
    assert (tmp_path / "other" / "fp32.wlz").read_text() == "keep\n"


def test_demo_refuses_a_hand_edited_report_in_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    folder = _demo_folder(tmp_path / "runs" / "demo")
    (folder / "report.md").write_text("my edits")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert_user_error(run_cli("demo", "-q"), "runs/demo/report.md", "changed since the demo wrote it", "--force")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_demo_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_user_error(run_cli("demo", "-o", tmp_path / "file"), "is a file, not a folder")
