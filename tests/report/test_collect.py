import json

import pytest

from wattless.errors import ConfigError, DataError, WattlessError
from wattless.report import collect_records, write_results
from wattless.report.collect import SOURCES, group_records, slug


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_reads_a_results_folder(tmp_path, fp32_record, int8_record):
    write_results([fp32_record, int8_record], tmp_path / "demo", title="t", plot=False)
    collection = collect_records([tmp_path / "demo"])
    assert [r["name"] for r in collection.records] == ["fp32", "int8"]
    assert collection.sources == [tmp_path / "demo" / "results.json"]
    assert {r["source"] for r in collection.records} == {str(tmp_path / "demo" / "results.json")}
    assert collection.records[1]["latency_ms"] == int8_record["latency_ms"]


def test_reads_one_record_and_a_list_of_step_records_without_names(tmp_path, fp32_record, int8_record):
    one = write_json(tmp_path / "r.json", fp32_record)
    steps = [{k: v for k, v in record.items() if k != "name"} | {"stage": stage}
             for record, stage in ((fp32_record, "original"), (int8_record, "quantize.ptq"))]
    steps_file = write_json(tmp_path / "out.wlz.steps.json", steps)
    collection = collect_records([one, steps_file])
    assert [r["name"] for r in collection.records] == ["fp32", "original", "quantize.ptq"]
    assert collection.sources == [one, steps_file]


def test_reads_the_json_of_demo_and_compress(tmp_path, fp32_record, int8_record):
    demo = write_json(tmp_path / "demo.json", {"records": [fp32_record, int8_record], "files": {}})
    compress = write_json(tmp_path / "c.json", {**int8_record, "baseline": fp32_record, "steps": [fp32_record]})
    records = collect_records([demo, compress]).records
    assert [r["name"] for r in records] == ["fp32", "int8", "fp32", "int8"]
    assert "baseline" not in records[3] and "steps" not in records[3]


def test_searches_a_folder_recursively_skipping_hidden_and_non_record_files(tmp_path, fp32_record, int8_record):
    write_json(tmp_path / "runs" / "a" / "r1.json", fp32_record)
    write_json(tmp_path / "runs" / "b" / "deeper" / "r2.json", [int8_record])
    write_json(tmp_path / "runs" / "b" / "config.json", {"lr": 0.1})
    write_json(tmp_path / "runs" / ".cache" / "r3.json", fp32_record)
    write_json(tmp_path / "runs" / ".r4.json", fp32_record)
    (tmp_path / "runs" / "notes.txt").write_text("not json")
    collection = collect_records([tmp_path / "runs"])
    assert [r["name"] for r in collection.records] == ["fp32", "int8"]
    assert collection.skipped == [tmp_path / "runs" / "b" / "config.json"]


def test_a_file_given_twice_is_read_once(tmp_path, fp32_record):
    path = write_json(tmp_path / "r.json", fp32_record)
    assert len(collect_records([path, tmp_path, path]).records) == 1


@pytest.mark.parametrize(("content", "error", "fragment"), [
    (b"{not json", DataError, "is not valid JSON"),
    (b"\xff\xfe\x00garbage", DataError, "not a text"),
    (b'{"lr": 0.1}', DataError, "holds no result records"),
    (b'[{"name": "a", "accuracy": "high"}]', DataError, "'accuracy' must be a number"),
    (b'{"name": "a", "accuracy": 0.9, "latency_ms": 5}', DataError, "'latency_ms' must be a list"),
    (b'{"accuracy": 0.9, "latency_ms": [{"batch": 1, "median": "fast"}]}', DataError, "'median' must be a number"),
    (b'{"accuracy": 0.9, "energy_j_per_sample": 3}', DataError, "'energy_j_per_sample' must be an object"),
    (b'{"accuracy": 0.9, "task": "ranking"}', DataError, "task 'ranking' unknown"),
    (b'[{"accuracy": 0.9}, 3]', DataError, "record 1 must be a record object, got 3"),
    (b'{"accuracy": 0.9, "recipe": [{"technique": "x", "config": 3}]}', DataError, "'config' must be an object"),
    (b"[" * 100_000, DataError, "not a results JSON file"),
])
def test_a_malformed_file_is_one_error_naming_it(tmp_path, content, error, fragment):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(error, match=fragment) as raised:
        collect_records([path])
    assert str(path) in str(raised.value)


def test_a_malformed_file_found_in_a_folder_is_an_error(tmp_path, fp32_record):
    write_json(tmp_path / "a" / "good.json", fp32_record)
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "bad.json").write_text("[1,")
    with pytest.raises(DataError, match="bad.json"):
        collect_records([tmp_path / "a"])


def test_missing_unsupported_and_empty_inputs(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        collect_records([tmp_path / "nope"])
    (tmp_path / "runs.db").write_bytes(b"SQLite format 3\x00 and then garbage" * 200)
    with pytest.raises(WattlessError, match=r"runs\.db.*not a wattless runs database"):
        collect_records([tmp_path / "runs.db"])
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="is not a results file"):
        collect_records([tmp_path / "table.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no result records found"):
        collect_records([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no runs given"):
        collect_records([])


def test_a_database_in_a_searched_folder_is_not_read_yet(tmp_path, fp32_record):
    write_json(tmp_path / "r.json", fp32_record)
    (tmp_path / "runs.db").write_bytes(b"SQLite format 3\x00")
    assert len(collect_records([tmp_path]).records) == 1
    assert not SOURCES[".db"].in_folders


def test_groups_per_dataset_and_task_and_tells_repeated_names_apart(fp32_record, int8_record, regression_records):
    copies = [{**fp32_record, "source": "runs/a/results.json"}, {**fp32_record, "source": "runs/b/results.json"},
              int8_record, {**fp32_record, "dataset": "mnist"},
              *({**record, "dataset": "diabetes"} for record in regression_records)]
    groups = group_records(copies)
    assert list(groups) == [("digits", "classification"), ("mnist", "classification"), ("diabetes", "regression")]
    assert [r["name"] for r in groups["digits", "classification"]] == [
        "fp32 (a/results.json)", "fp32 (b/results.json)", "int8"]
    assert [r["name"] for r in groups["mnist", "classification"]] == ["fp32"]
    same_folder = group_records([{**int8_record, "name": "original", "source": f"runs/{name}"}
                                 for name in ("c.json", "c.wlz.steps.json")])
    assert [r["name"] for r in same_folder["digits", "classification"]] == [
        "original (c.json)", "original (c.wlz.steps.json)"]


def test_slug_is_file_name_safe():
    assert slug("csv:data/My Set.csv") == "csv-data-my-set-csv"
    assert slug("<script>") == "script"
    assert slug("///") == "data"


def test_a_runs_database_gives_its_finished_records(tmp_path):
    from wattless.runs.db import RunsDB

    with RunsDB(tmp_path / "runs.db") as db:
        db.add({"name": "ptq4", "accuracy": 0.9, "size_bytes": 100, "task": "classification"}, key="a", study="s",
               seed=0)
        db.add({"accuracy": 0.8, "size_bytes": 50, "task": "classification"}, key="b", study="s", seed=1,
               recipe_name="prune")
        db.add_pending([{"key": "c", "study": "s"}])
    collection = collect_records([tmp_path / "runs.db"])
    assert [r["name"] for r in collection.records] == ["ptq4 (seed 0)", "prune (seed 1)"]
    assert [r["accuracy"] for r in collection.records] == [0.9, 0.8]
