"""Records: every figure names its provenance, sizes compare with the model's own dense form and with the original,
ONNX records count from the graph, and rankings compare energy of one provenance only."""

from __future__ import annotations

import pytest

import wattless
from wattless.measurement.provenance import KINDS, RecordSchema, comparable_energy, energy_value, provenance_of

FIGURES = ("accuracy", "params", "nonzero_params", "size_bytes", "size_bytes_fp32", "compression_ratio", "macs",
           "bops", "latency_ms", "energy_j_per_sample", "size_bytes_original", "compression_ratio_original")


@pytest.fixture(scope="module")
def svd_file(trained_mlp, digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("record")
    wattless.save(trained_mlp, folder / "m.wlz")
    result = wattless.compress(folder / "m.wlz", digits, folder / "svd.wlz", steps=["factorize.svd:rank=4,"
                                                                                    "finetune_epochs=0"],
                               measure_result=False)
    return folder / "m.wlz", result.path


def test_a_record_is_schema_2_and_every_figure_says_how_it_was_obtained(svd_file, digits):
    record = wattless.measure(svd_file[1], digits, engines="torch", batches="1", repeats=2)
    RecordSchema.model_validate(record)
    assert record["schema_version"] == 2
    for key in FIGURES:
        assert record["provenance"][key]["kind"] in KINDS and record["provenance"][key]["by"], key
    assert provenance_of(record, "accuracy") == "measured" and provenance_of(record, "size_bytes") == "measured"
    assert record["provenance"]["energy_j_per_sample"]["kind"] == "estimated"  # the meter is off in tests


def test_a_factorized_model_is_compared_with_its_own_dense_form_and_with_the_original(svd_file, digits):
    original, svd = svd_file
    record = wattless.measure(svd, digits, engines="torch", batches="1", repeats=2)
    original_fp32 = wattless.measure(original, digits, engines="torch", batches="1", repeats=2)["size_bytes_fp32"]
    assert record["size_bytes_original"] == original_fp32 > record["size_bytes_fp32"]  # fewer weights now
    assert record["compression_ratio_original"] > record["compression_ratio"]
    assert record["provenance"]["size_bytes_original"]["kind"] == "declared"  # kept in the file's metadata


def test_an_onnx_record_counts_from_its_graph(trained_mlp, digits, tmp_path):
    fp32 = wattless.measure(wattless.export(trained_mlp, tmp_path / "m.onnx"), digits, batches="1", repeats=2)
    int8 = wattless.measure(wattless.export(trained_mlp, tmp_path / "q.onnx", int8=True, dataset=digits), digits,
                            batches="1", repeats=2)
    params = sum(p.numel() for p in trained_mlp.module.parameters())
    assert fp32["params"] == int8["params"] == params
    assert fp32["provenance"]["params"]["by"] == "count of the ONNX graph"
    assert set(fp32["weight_bits"].values()) == {32.0} and set(int8["weight_bits"].values()) == {8.0}
    assert int8["bops"] == int8["macs"] * 8 * 8 and fp32["bops"] == fp32["macs"] * 32 * 32
    assert fp32["provenance"]["size_bytes_fp32"]["kind"] == "declared"


def test_energy_is_ranked_on_one_provenance_only():
    measured = {"energy_j_per_sample": {"value": 1.0, "method": "rapl", "provenance": "measured"},
                "energy_estimate": {"value": 3.0, "method": "estimate-45nm"}}
    refused = {"energy_j_per_sample": {"value": 2.0, "method": "estimate-45nm", "meter_error": "too short"}}
    assert energy_value(measured, "measured") == 1.0 and energy_value(refused, "measured") is None
    assert comparable_energy([measured, refused]) == ("estimated", [3.0, 2.0])  # never 1.0 against 2.0
    assert comparable_energy([measured, measured]) == ("measured", [1.0, 1.0])
