"""The same sweep as Ray tasks on a local Ray instance (slow: starting Ray takes a while)."""

from __future__ import annotations

import pytest

import wattless
from wattless.runs import RunsDB, load_study, run_sweep

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_instance_fills_the_same_database(tmp_path, write_study):
    recipes = [{"name": "ptq4", "steps": [{"quantize.ptq": {"bits": 4}}]},
               {"name": "int8", "steps": ["quantize.int8"]}]  # an ONNX artifact too
    study = load_study(write_study(seeds=[0, 1], recipes=recipes))
    result = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", workers=2, executor="ray")
    assert result.ran == 6 and not result.failed, result
    assert not ray.is_initialized()  # the local instance we started is shut down
    with RunsDB(tmp_path / "runs.db") as runs:
        rows = runs.list(study="tiny")
        assert sorted(r["key"] for r in rows) == sorted(t.key for t in study.trials())
        assert {r["status"] for r in rows} == {"done"}
        assert all(r["accuracy"] > 0.2 and r["host"] for r in rows)
        for row in rows:
            if row["artifact"].endswith(".onnx"):
                assert row["record"]["precision"] == "int8"
            else:
                wattless.load(row["artifact"])
    again = run_sweep(study, db=tmp_path / "runs.db", out=tmp_path / "out", executor="ray")
    assert again.ran == 0 and again.skipped == 6
