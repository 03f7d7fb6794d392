"""The demo writes the promised report files with three measured variants."""

import json

import pandas as pd
from matplotlib.image import imread

from wattless.api._demo import run_demo


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
