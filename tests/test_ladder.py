"""Compression within an accuracy budget: the best candidate of a ladder, never one outside the budget."""

import importlib.util

import pytest

from wattless.errors import ConfigError
from wattless.ladder import choose_within_budget, compress_within_budget, drop, engine_latency, objective_value
from wattless.measurement.engines import get_engine
from wattless.recipe import Recipe

FAST = {"batches": (1, 8), "repeats": 3}


def ladder(*entries):
    return [Recipe.from_dict({"name": name, "steps": steps}) for name, steps in entries]


SIZE_LADDER = ladder(("ptq8", [{"quantize.ptq": {"bits": 8}}]),
                     ("ptq4", [{"quantize.ptq": {"bits": 4}}]),
                     ("ruin", [{"prune.magnitude": {"sparsity": 0.99, "finetune_epochs": 0}}]),
                     ("int8", ["quantize.int8"]))


def test_the_smallest_candidate_within_the_budget_is_chosen(trained_mlp, digits, tmp_path):
    out = tmp_path / "best.wlz"
    found = compress_within_budget(trained_mlp, digits, out, max_drop=2.0, objective="size", ladder=SIZE_LADDER,
                                   **FAST)
    rows = {row["candidate"]: row for row in found.rows}
    assert rows["ruin"]["status"] == "over budget" and rows["ruin"]["val_drop"] > 2
    assert rows["int8"]["status"].startswith("skipped")
    chosen = rows[found.chosen]
    assert chosen["status"] == "chosen" and chosen["val_drop"] <= 2 and chosen["test_drop"] <= 2
    within = [r for r in found.rows if r["status"] in ("chosen", "within budget")]
    assert chosen["record"]["size_bytes"] == min(r["record"]["size_bytes"] for r in within)
    assert out.stat().st_size == chosen["record"]["size_bytes"]
    assert [p.name for p in tmp_path.iterdir()] == ["best.wlz"]  # candidates' files are gone


def test_no_candidate_within_the_budget_writes_nothing(trained_mlp, digits, tmp_path):
    found = compress_within_budget(trained_mlp, digits, tmp_path / "best.wlz", max_drop=1.0, objective="size",
                                   ladder=[SIZE_LADDER[2]], **FAST)
    assert found.path is None and found.chosen is None
    assert not list(tmp_path.iterdir())


def test_an_onnx_output_takes_int8_candidates_and_ranks_by_latency(trained_mlp, digits, tmp_path):
    out = tmp_path / "fast.onnx"
    found = compress_within_budget(trained_mlp, digits, out, max_drop=3.0, objective="latency",
                                   ladder=ladder(("int8", ["quantize.int8"]),
                                                 ("fp32", [{"quantize.ptq": {"bits": 8}}])), **FAST)
    assert found.chosen in ("int8", "fp32") and out.exists()
    assert all("objective" in row for row in found.rows)


def test_a_candidate_that_fails_on_test_is_never_returned():
    rows = [{"candidate": "small", "status": "within budget", "objective": 1.0, "test_drop": 1.5},
            {"candidate": "medium", "status": "within budget", "objective": 2.0, "test_drop": 0.5},
            {"candidate": "large", "status": "over budget", "objective": 0.5, "test_drop": 0.0}]
    assert choose_within_budget(rows, 1.0)["candidate"] == "medium"
    assert rows[0]["status"] == "rejected on test"
    assert choose_within_budget([rows[0] | {"status": "within budget"}], 1.0) is None


def test_drop_is_points_for_accuracy_and_percent_for_rmse():
    assert drop({"accuracy": 0.90}, {"accuracy": 0.885}) == pytest.approx(1.5)
    assert drop({"rmse": 50.0}, {"rmse": 55.0}) == pytest.approx(10.0)


def test_latency_objective_uses_the_files_own_engine():
    record = {"artifact": "m.wlz", "latency_ms": [
        {"engine": "torch", "batch": 1, "median": 0.04}, {"engine": "torch", "batch": 256, "median": 2.56},
        {"engine": "onnxruntime", "batch": 1, "median": 0.001}]}
    assert objective_value(record, "latency") == pytest.approx((0.04 * 0.01) ** 0.5)


def test_a_wlz_may_be_deployed_natively_where_it_is_fastest():
    record = {"artifact": "m.wlz", "latency_ms": [
        {"engine": "torch", "batch": 1, "median": 0.04}, {"engine": "native", "batch": 1, "median": 0.004},
        {"engine": "onnxruntime", "batch": 1, "median": 0.001}]}  # not how a .wlz deploys
    assert objective_value(record, "latency") == pytest.approx(0.004)


@pytest.mark.skipif(get_engine("native").unavailable() is not None, reason="no C compiler")
def test_the_latency_ladder_times_wlz_candidates_natively_and_says_where_the_choice_runs(trained_mlp, digits,
                                                                                         tmp_path):
    found = compress_within_budget(trained_mlp, digits, tmp_path / "fast.wlz", max_drop=3.0, objective="latency",
                                   ladder=ladder(("kmeans", [{"share.kmeans": {"clusters": 16,
                                                                              "finetune_epochs": 0}}])), **FAST)
    row = found.rows[0]
    assert {entry["engine"] for entry in row["record"]["latency_ms"]} == {"torch", "native"}
    assert row["engine"] in ("torch", "native") and row["objective"] == min(engine_latency(row["record"]).values())


@pytest.mark.parametrize("options, message", [
    ({"max_drop": 1.0, "objective": "speed"}, "objective 'speed' unknown"),
    ({"max_drop": -1.0}, "between 0 and 100"),
])
def test_bad_options_fail_before_any_work(trained_mlp, digits, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        compress_within_budget(trained_mlp, digits, tmp_path / "x.wlz", ladder=SIZE_LADDER, **options)


@pytest.mark.skipif(importlib.util.find_spec("zigzag") is None, reason="ZigZag not installed (extra hw)")
def test_the_energy_ladder_can_rank_on_one_simulated_design(trained_mlp, digits, tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLESS_CACHE", str(tmp_path / "cache"))
    found = compress_within_budget(trained_mlp, digits, tmp_path / "green.wlz", max_drop=5.0, objective="energy",
                                   energy_model="simulated:edge_tpu_like", ladder=SIZE_LADDER[:2], **FAST)
    for row in found.rows:
        assert row["objective_provenance"] == "simulated (edge_tpu_like)"
        assert row["objective"] == row["record"]["simulated"]["edge_tpu_like"]["energy_j_per_sample"]


@pytest.mark.parametrize("options, message", [
    ({"objective": "size", "energy_model": "simulated:edge_tpu_like"}, "goes with --objective energy"),
    ({"objective": "energy", "energy_model": "watts"}, "unknown; use simulated:DESIGN"),
])
def test_energy_model_options_fail_before_any_work(trained_mlp, digits, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        compress_within_budget(trained_mlp, digits, tmp_path / "x.wlz", max_drop=1.0, ladder=SIZE_LADDER, **options)
