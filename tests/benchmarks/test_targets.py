"""benchmarks/targets.py: verdicts on both sides of a threshold, refusals, and provenance of record figures."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # benchmarks/ is a script folder

from targets import (  # noqa: E402
    MET,
    MISSED,
    Target,
    all_met,
    choose_on_validation,
    derived,
    energy_entry,
    energy_note,
    provenance_of,
    verdict,
)

ESTIMATE = {"value": 2e-5, "method": "estimate-45nm", "batch": 1}


def old_record(**extra):
    """A record as `measure` writes it today (no provenance keys), without an energy meter."""
    return {"accuracy": 0.9, "size_bytes": 1000, "size_bytes_fp32": 4000, "latency_ms": [], "macs": 10,
            "params": 100, "artifact": "/tmp/model.wlz", "energy_j_per_sample": dict(ESTIMATE), **extra}


@pytest.mark.parametrize(("op", "threshold", "value", "expected"), [
    ("<=", 0.3, 0.29, MET), ("<=", 0.3, 0.3, MET), ("<=", 0.3, 0.31, MISSED),
    (">=", 2.5, 2.6, MET), (">=", 2.5, 2.5, MET), (">=", 2.5, 2.4, MISSED),
    (">", 0.88, 0.88, MISSED), (">", 0.88, 0.89, MET), ("<", 5.0, 4.9, MET), ("<", 5.0, 5.0, MISSED),
])
def test_verdict_on_both_sides_of_the_threshold(op, threshold, value, expected):
    assert verdict(Target("figure", op, threshold), value, "measured") == expected


def test_a_target_refuses_a_provenance_it_does_not_accept():
    measured_energy = Target("measured energy ratio", ">=", 20.0)
    estimated_energy = Target("estimated energy ratio", ">=", 20.0, accepts=frozenset({"estimated"}))
    with pytest.raises(ValueError, match="accepts measured figures only; this one is estimated"):
        verdict(measured_energy, 22.0, "estimated")
    with pytest.raises(ValueError, match="this one is measured"):
        verdict(estimated_energy, 22.0, "measured")
    with pytest.raises(ValueError, match="this one is declared"):
        verdict(Target("accuracy", ">=", 0.5), 0.9, "declared")
    assert verdict(estimated_energy, 22.0, "estimated") == MET
    assert verdict(estimated_energy, 19.0, "estimated") == MISSED


def test_refusals_of_bad_targets_and_values():
    with pytest.raises(ValueError, match="unknown provenance"):
        verdict(Target("x", "<=", 1.0), 0.5, "guessed")
    with pytest.raises(ValueError, match="op must be"):
        Target("x", "==", 1.0)
    with pytest.raises(ValueError, match="accepts must be"):
        Target("x", "<=", 1.0, accepts=frozenset({"rumoured"}))
    with pytest.raises(ValueError, match="no value"):
        verdict(Target("x", "<=", 1.0), float("nan"), "measured")


def test_all_met_checks_every_part_and_refuses_any_wrong_provenance():
    drop, ratio = Target("drop", "<=", 1.0), Target("ratio", ">=", 60.0)
    assert all_met((drop, 0.5, "measured"), (ratio, 70.0, "measured")) == MET
    assert all_met((drop, 0.5, "measured"), (ratio, 50.0, "measured")) == MISSED
    with pytest.raises(ValueError):
        all_met((drop, 2.0, "measured"), (ratio, 70.0, "estimated"))  # refused even though already missed


def test_provenance_inferred_from_old_records():
    record = old_record()
    for key in ("accuracy", "size_bytes", "size_bytes_fp32", "latency_ms", "macs", "params"):
        assert provenance_of(record, key) == "measured"
    assert provenance_of(record, "energy_j_per_sample") == "estimated"
    assert provenance_of({"rmse": 1.2}, "rmse") == "measured"
    onnx = old_record(artifact="/tmp/model.int8.onnx")  # its fp32 size and parameters come from metadata
    assert provenance_of(onnx, "size_bytes_fp32") == "declared"
    assert provenance_of(onnx, "params") == "declared"
    assert provenance_of(onnx, "size_bytes") == "measured"
    metered = old_record(energy_j_per_sample={"value": 3e-5, "method": "rapl"}, energy_estimate=dict(ESTIMATE))
    assert provenance_of(metered, "energy_j_per_sample") == "measured"
    assert provenance_of(metered, "energy_estimate") == "estimated"
    assert provenance_of(old_record(energy_j_per_sample={"value": 1.0, "method": "nvml"}),
                         "energy_j_per_sample") == "measured"
    with pytest.raises(ValueError, match="unknown provenance"):
        provenance_of(old_record(energy_j_per_sample={"value": 1.0, "method": "guess"}), "energy_j_per_sample")
    with pytest.raises(ValueError, match="no provenance known"):
        provenance_of(record, "colour")


def test_provenance_read_from_new_records():
    record = old_record(schema_version=2, provenance={
        "accuracy": {"kind": "measured", "split": "test"},
        "energy_j_per_sample": {"kind": "simulated", "simulator": "x"},
        "size_bytes_fp32": {"kind": "declared", "source": "metadata"},
    })
    assert provenance_of(record, "accuracy") == "measured"
    assert provenance_of(record, "energy_j_per_sample") == "simulated"  # the record's word, not the method's
    assert provenance_of(record, "size_bytes_fp32") == "declared"
    assert provenance_of(record, "size_bytes") == "measured"  # a key it leaves out: inferred
    with pytest.raises(ValueError, match="one of"):
        provenance_of(old_record(schema_version=2, provenance={"accuracy": {"kind": "vibes"}}), "accuracy")


def test_an_estimated_energy_target_takes_the_estimate_and_the_note_says_so():
    green = Target("estimated energy ratio", ">=", 20.0, accepts=frozenset({"estimated"}))
    metered = old_record(energy_j_per_sample={"value": 3e-5, "method": "rapl"}, energy_estimate=dict(ESTIMATE))
    entry, kind = energy_entry(metered)
    assert (entry["method"], kind) == ("estimate-45nm", "estimated")
    assert verdict(green, 25.0, kind) == MET
    with pytest.raises(ValueError):
        verdict(green, 25.0, provenance_of(metered, "energy_j_per_sample"))
    note = energy_note([old_record(), old_record()])
    assert "estimated (estimate-45nm) for all 2 records" in note and "no energy meter" in note
    refused = old_record(energy_j_per_sample={**ESTIMATE, "meter": "rapl", "meter_error": "too short"})
    assert "rapl: too short" in energy_note([refused])
    assert "A meter (rapl)" in energy_note([metered], used="energy_estimate")


def test_derived_provenance_is_the_weakest_part():
    assert derived("measured", "measured") == "measured"
    assert derived("measured", "estimated") == "estimated"
    assert derived("declared", "measured") == "declared"
    with pytest.raises(ValueError):
        derived("measured", "hearsay")


def test_choose_on_validation_uses_the_score_and_keeps_the_first_on_a_tie():
    rows = [{"name": "a", "val": 0.8, "test": 0.95}, {"name": "b", "val": 0.9, "test": 0.7},
            {"name": "c", "val": 0.9, "test": 0.99}]
    assert choose_on_validation(rows, lambda r: r["val"])["name"] == "b"  # not c, the better one on test
    with pytest.raises(ValueError):
        choose_on_validation([], lambda r: r["val"])
