"""Compression within an accuracy budget: the best candidate of a ladder, never one outside the budget."""

import importlib.util

import pytest

from wattless.errors import ConfigError
from wattless.ladder import (
    choose_within_budget,
    compress_within_budget,
    drop,
    engine_latency,
    objective_value,
    ruled_out_warning,
)
from wattless.measurement.engines import get_engine
from wattless.recipe import Recipe

FAST = {"batches": (1, 8), "repeats": 3}


def ladder(*entries):
    return [Recipe.from_dict({"name": name, "steps": steps}) for name, steps in entries]


SIZE_LADDER = ladder(("ptq8", [{"quantize.ptq": {"bits": 8}}]),
                     ("ptq4", [{"quantize.ptq": {"bits": 4}}]),
                     ("ruin", [{"prune.magnitude": {"sparsity": 0.99, "scope": "layer", "finetune_epochs": 0}}]),
                     ("int8", ["quantize.int8"]))


def test_the_smallest_candidate_within_the_budget_is_chosen(trained_mlp, digits, tmp_path):
    out = tmp_path / "best.wlz"
    with pytest.warns(UserWarning, match="rules out 1 of 4 candidates, which deploy as .onnx: int8"):
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


def timed_row(name, low, median, high, val_drop, size, test_drop=0.0):
    """A candidate row with a timed objective (ms per sample) and its spread [low, high]."""
    return {"candidate": name, "status": "within budget", "objective": median, "objective_range": [low, high],
            "val_drop": val_drop, "test_drop": test_drop, "record": {"size_bytes": size}}


def test_latencies_inside_each_others_noise_tie_and_the_smaller_drop_wins():
    rows = [timed_row("kd-pruned-student-int8", 0.8, 1.0, 1.3, val_drop=0.82, size=100),
            timed_row("prune-int8", 1.1, 1.2, 1.4, val_drop=0.51, size=300),
            timed_row("int8", 1.5, 1.6, 1.7, val_drop=0.10, size=500)]  # outside the fastest one's spread
    chosen = choose_within_budget(rows, 1.0)
    assert chosen["candidate"] == "prune-int8" and chosen["tied_with"] == ["kd-pruned-student-int8"]


def test_a_tie_on_drop_goes_to_the_smaller_file_and_a_clear_difference_is_no_tie():
    rows = [timed_row("a", 0.9, 1.0, 1.1, val_drop=0.5, size=300), timed_row("b", 1.0, 1.05, 1.2, val_drop=0.5,
                                                                               size=200)]
    assert choose_within_budget(rows, 1.0)["candidate"] == "b"
    rows = [timed_row("fast", 0.9, 1.0, 1.1, val_drop=0.9, size=300), timed_row("slow", 1.2, 1.3, 1.4, val_drop=0.1,
                                                                                   size=200)]
    chosen = choose_within_budget(rows, 1.0)
    assert chosen["candidate"] == "fast" and "tied_with" not in chosen


def test_a_tied_candidate_that_fails_on_test_gives_way_to_the_next():
    rows = [timed_row("a", 0.9, 1.0, 1.1, val_drop=0.9, size=100),
            timed_row("b", 1.0, 1.05, 1.2, val_drop=0.2, size=100, test_drop=3.0)]
    assert choose_within_budget(rows, 1.0)["candidate"] == "a"
    assert rows[1]["status"] == "rejected on test"


def test_the_spread_of_the_latency_objective_comes_from_the_quartiles_of_the_round_medians():
    from wattless.ladder import _set_objective

    record = {"artifact": "m.onnx", "latency_ms": [
        {"engine": "onnxruntime", "batch": 1, "median": 0.04, "p25": 0.03, "p75": 0.05},
        {"engine": "onnxruntime", "batch": 100, "median": 1.0, "p25": 0.75, "p75": 1.25}]}
    row = {"record": record}
    _set_objective(row, "latency")
    assert row["engine"] == "onnxruntime" and row["objective"] == pytest.approx((0.04 * 0.01) ** 0.5)
    assert row["objective_range"] == pytest.approx([(0.03 * 0.0075) ** 0.5, (0.05 * 0.0125) ** 0.5])


def test_the_original_and_every_candidate_are_timed_together_in_rounds(trained_mlp, digits, tmp_path, monkeypatch):
    from wattless.measurement import latency

    calls = []

    def fake_time_runner(runner, *, batch, threads, repeats, **_):
        calls.append((id(runner), batch))
        return {"engine": runner.engine, "batch": batch, "threads": threads, "median": 1.0, "p25": 1.0, "p75": 1.0,
                "repeats": repeats, "precision": runner.precision}

    monkeypatch.setattr(latency, "time_runner", fake_time_runner)
    found = compress_within_budget(trained_mlp, digits, tmp_path / "best.onnx", max_drop=50.0, objective="size",
                                   ladder=SIZE_LADDER[:2], batches=(1, 8), repeats=3)
    one_round = calls[:len(calls) // 3]
    assert calls == one_round * 3  # three rounds, each running every variant in turn
    assert len({runner for runner, _ in one_round}) == 4  # the original on torch and ONNX Runtime, two candidates
    assert all(entry["round_medians"] == [1.0] * 3 for row in found.rows for entry in row["record"]["latency_ms"])
    assert [entry["engine"] for entry in found.baseline["latency_ms"]] == ["torch", "torch", "onnxruntime",
                                                                            "onnxruntime"]


def test_a_wlz_output_says_first_which_candidates_it_rules_out(trained_mlp, digits, tmp_path):
    events = []
    ladder_ = ladder(("int8", ["quantize.int8"]), ("ptq8", [{"quantize.ptq": {"bits": 8}}]))
    found = compress_within_budget(trained_mlp, digits, tmp_path / "best.wlz", max_drop=50.0, objective="energy",
                                   ladder=ladder_, on_warning=events.append,
                                   on_candidate=lambda _i, _n, name: events.append(name), **FAST)
    assert events[0] == ("-o best.wlz rules out 1 of 2 candidates, which deploy as .onnx: int8; use -o best.onnx to "
                         "try them too, or -o best.auto to keep the best in whichever format it needs")
    assert events[1:] == ["ptq8"] and found.rows[0]["status"].startswith("skipped")
    assert ruled_out_warning(ladder_, tmp_path / "best.onnx") is None
    assert ruled_out_warning(ladder_, tmp_path / "best.auto") is None


def test_an_auto_output_keeps_the_best_candidate_in_its_own_format(trained_mlp, digits, tmp_path):
    ladder_ = ladder(("int8", ["quantize.int8"]), ("ptq4", [{"quantize.ptq": {"bits": 4}}]))
    found = compress_within_budget(trained_mlp, digits, tmp_path / "best.auto", max_drop=50.0, objective="size",
                                   ladder=ladder_, **FAST)
    rows = {row["candidate"]: row for row in found.rows}
    assert (rows["int8"]["record"]["precision"], rows["ptq4"]["record"]["precision"]) == ("int8", "w4")  # both tried
    chosen = rows[found.chosen]
    assert found.path == tmp_path / ("best.onnx" if found.chosen == "int8" else "best.wlz")
    assert chosen["record"]["artifact"] == str(found.path)
    assert found.path.stat().st_size == chosen["record"]["size_bytes"]
    assert chosen["record"]["size_bytes"] == min(row["record"]["size_bytes"] for row in found.rows)
    assert [p.name for p in tmp_path.iterdir()] == [found.path.name]


def test_a_candidate_the_model_cannot_take_fails_alone_and_the_ladder_goes_on(trained_mlp, digits, tmp_path):
    out = tmp_path / "best.wlz"
    empties_a_layer = {"prune.magnitude": {"sparsity": 0.999, "scope": "global", "finetune_epochs": 0}}
    impossible = ladder(("everything", [empties_a_layer]),
                        ("ptq8", [{"quantize.ptq": {"bits": 8}}]))
    found = compress_within_budget(trained_mlp, digits, out, max_drop=2.0, objective="size", ladder=impossible,
                                   **FAST)
    rows = {row["candidate"]: row for row in found.rows}
    assert rows["everything"]["status"].startswith("failed: ") and "record" not in rows["everything"]
    assert found.chosen == "ptq8" and out.exists()
