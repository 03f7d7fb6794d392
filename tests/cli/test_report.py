"""``wattless report RUNS... -o DIR``: both files written, nothing overwritten, user errors are exit 2."""

import json

import pytest

RECORDS = [
    {"name": "fp32", "dataset": "digits", "task": "classification", "accuracy": 0.95, "size_bytes": 4000,
     "latency_ms": [{"engine": "torch", "precision": "fp32", "batch": 1, "threads": 1, "median": 1.0}],
     "energy_j_per_sample": {"value": 4e-6, "method": "estimate-45nm"}},
    {"name": "int8", "dataset": "digits", "task": "classification", "accuracy": 0.94, "size_bytes": 1000,
     "latency_ms": [{"engine": "onnxruntime", "precision": "int8", "batch": 1, "threads": 1, "median": 0.3}],
     "energy_j_per_sample": {"value": 1e-6, "method": "estimate-45nm"}},
]


@pytest.fixture
def runs(work):
    folder = work / "runs" / "demo"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(RECORDS))
    return work / "runs"


def test_writes_html_and_markdown_into_a_new_folder(work, runs, cli_run):
    result = cli_run("report", runs, "-o", "out", "--title", "My models")
    assert result.code == 0, result.err
    assert result.out == ""
    assert "wrote out/report.html and out/report.md" in result.err
    assert sorted(p.name for p in (work / "out").iterdir()) == ["pareto-g1-digits.png", "report.html", "report.md"]
    html = (work / "out" / "report.html").read_text()
    assert "<h1>My models</h1>" in html and "int8" in html
    assert "](pareto-g1-digits.png)" in (work / "out" / "report.md").read_text()


def test_refuses_to_overwrite_without_force(work, runs, user_error, cli_run):
    assert cli_run("report", runs / "demo" / "results.json", "-o", "out").code == 0
    user_error(["report", runs, "-o", "out"], "already exists", "--force")
    forced = cli_run("report", runs, "-o", "out", "--force", "--title", "Second")
    assert forced.code == 0, forced.err
    assert "<h1>Second</h1>" in (work / "out" / "report.html").read_text()


def test_a_missing_input_is_a_user_error(runs, user_error):
    user_error(["report", runs, "missing.json", "-o", "out"], "'missing.json' does not exist")


def test_a_malformed_file_is_a_user_error_naming_it(work, runs, user_error):
    (runs / "broken.json").write_text('{"accuracy": ')
    user_error(["report", runs, "-o", "out"], "broken.json", "is not valid JSON")


def test_a_file_that_is_not_a_runs_database_is_a_user_error(work, user_error):
    (work / "runs.db").write_bytes(b"SQLite format 3\x00 and then garbage" * 200)
    user_error(["report", "runs.db", "-o", "out"], "runs.db", "not a wattless runs database")


def test_the_output_folder_needs_an_existing_parent(work, runs, user_error):
    user_error(["report", runs, "-o", "no/such/folder"], "does not exist")


def test_runs_and_output_are_required(work, cli_run):
    assert cli_run("report", "-o", "out").code == 2
    assert cli_run("report", "runs").code == 2
    assert list(work.iterdir()) == []
