import pytest

from wattless.errors import WattlessError
from wattless.report import comparison_rows, fastest_latency
from wattless.report.format import MISSING


def test_deltas_and_ratios_against_the_first_record(fp32_record, int8_record):
    base_row, int8_row = comparison_rows([fp32_record, int8_record])
    assert int8_row["Variant"] == "int8"
    assert int8_row["Accuracy (%)"] == "94.80"
    assert int8_row["Δ acc (pts)"] == "-0.20"
    assert int8_row["Smaller"] == "4.0x"
    assert int8_row["Latency b1 (1 thread)"] == "0.300 ms (ort int8)"
    assert int8_row["Speed-up b1"] == "3.3x"
    assert int8_row["Latency b256 (1 thread)"] == "5.00 ms (ort int8)"
    assert int8_row["Speed-up b256"] == "4.0x"
    assert int8_row["Energy/sample (estimate-45nm, b1)"] == "1 µJ"
    assert int8_row["Less energy"] == "4.0x"
    assert base_row["Δ acc (pts)"] == "+0.00"
    assert base_row["Smaller"] == base_row["Speed-up b1"] == "1.0x"


def test_every_row_has_the_same_columns_in_the_same_order(fp32_record, int8_record):
    rows = comparison_rows([fp32_record, int8_record, {"name": "empty"}])
    assert len({tuple(row) for row in rows}) == 1


def test_an_explicit_baseline_need_not_be_a_row(fp32_record, int8_record):
    (row,) = comparison_rows([int8_record], baseline=fp32_record)
    assert (row["Δ acc (pts)"], row["Smaller"], row["Speed-up b1"]) == ("-0.20", "4.0x", "3.3x")


def test_regression_records_show_rmse_and_its_change(regression_records):
    base_row, small_row = comparison_rows(regression_records)
    assert "Accuracy (%)" not in small_row
    assert small_row["RMSE"] == "53.1"
    assert small_row["Δ RMSE"] == "+3.1"
    assert small_row["Smaller"] == "8.0x"
    assert base_row["RMSE"] == "50"


def test_missing_keys_render_as_a_dash(fp32_record):
    _, row = comparison_rows([fp32_record, {"name": "bare", "accuracy": None}])
    assert set(row.values()) == {"bare", MISSING}


def test_a_baseline_without_measurements_gives_dashes_not_errors(int8_record):
    _, row = comparison_rows([{"name": "bare"}, int8_record])
    assert row["Accuracy (%)"] == "94.80"
    assert row["Δ acc (pts)"] == row["Smaller"] == row["Speed-up b1"] == row["Less energy"] == MISSING


def test_mixed_energy_methods_label_each_value_and_are_not_divided(fp32_record, int8_record):
    int8_record["energy_j_per_sample"] = {"value": 2e-6, "method": "rapl", "batch": 1}
    base_row, int8_row = comparison_rows([fp32_record, int8_record])
    assert "Energy/sample" in int8_row  # no single method in the header
    assert base_row["Energy/sample"] == "4 µJ (estimate-45nm, b1)"
    assert int8_row["Energy/sample"] == "2 µJ (rapl, b1)"
    assert int8_row["Less energy"] == MISSING


def test_energy_at_another_batch_is_not_compared(fp32_record, int8_record):
    int8_record["energy_j_per_sample"]["batch"] = 256
    _, int8_row = comparison_rows([fp32_record, int8_record])
    assert int8_row["Energy/sample"] == "1 µJ (estimate-45nm, b256)"
    assert int8_row["Less energy"] == MISSING


def test_the_baseline_row_reads_one_even_when_another_engine_runs_it_fastest(fp32_record, int8_record):
    # The demo's case: fp32 runs 2.6x faster in ONNX Runtime than in torch; its row must not claim a speed-up.
    fp32_record["latency_ms"].append({"engine": "onnxruntime", "precision": "fp32", "batch": 1, "threads": 1,
                                      "median": 0.4})
    base_row, int8_row = comparison_rows([fp32_record, int8_record])
    assert base_row["Latency b1 (1 thread)"] == "0.400 ms (ort fp32)"
    assert base_row["Speed-up b1"] == base_row["Smaller"] == base_row["Less energy"] == "1.0x"
    assert int8_row["Speed-up b1"] == "1.3x"  # 0.4 ms / 0.3 ms: the two latency cells shown, not torch's 1.0 ms


def test_speed_up_compares_with_the_baseline_at_the_same_thread_count(fp32_record, int8_record):
    fp32_record["latency_ms"].append({"engine": "torch", "precision": "fp32", "batch": 1, "threads": 4,
                                      "median": 0.5})
    int8_record["latency_ms"] = [{"engine": "onnxruntime", "precision": "int8", "batch": 1, "threads": 4,
                                  "median": 0.1}]
    _, int8_row = comparison_rows([fp32_record, int8_record])
    assert int8_row["Latency b1"] == "0.100 ms (ort int8, 4 threads)"
    assert int8_row["Speed-up b1"] == "5.0x"  # 0.5 ms / 0.1 ms, not the 1-thread 1.0 ms


def test_records_of_different_tasks_cannot_be_compared(fp32_record, regression_records):
    with pytest.raises(WattlessError, match="different tasks"):
        comparison_rows([fp32_record, regression_records[0]])


def test_no_records_give_no_rows():
    assert comparison_rows([]) == []


def test_fastest_latency_picks_the_lowest_median_at_that_batch(int8_record):
    assert fastest_latency(int8_record, 1)["engine"] == "onnxruntime"
    assert fastest_latency(int8_record, 256)["median"] == 5.0
    assert fastest_latency(int8_record, 64) is None
    assert fastest_latency({"name": "bare"}, 1) is None
