"""Latency records: keys, units, quartile order, repeat rules and thread handling; never a speed threshold."""

from __future__ import annotations

import itertools

import pytest
import torch

from wattless.errors import ArtifactError, ConfigError
from wattless.measurement import latency, onnx_session, summarize_times, time_onnx, time_torch

RECORD_KEYS = ["engine", "batch", "threads", "median", "p25", "p75", "repeats"]


@pytest.fixture
def clock_10ms_per_call(monkeypatch):
    """A fake perf_counter_ns that advances 10 ms per reading, so every timed call lasts exactly 10 ms."""
    readings = itertools.count(step=10_000_000)
    monkeypatch.setattr(latency.time, "perf_counter_ns", lambda: next(readings))


def test_summarize_times_gives_median_and_quartiles():
    assert summarize_times([5.0, 1.0, 3.0, 2.0, 4.0]) == {"median": 3.0, "p25": 2.0, "p75": 4.0}


@pytest.fixture
def three_torch_threads():
    original = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(original)


def test_time_torch_record_and_thread_restore(mlp, three_torch_threads):
    mlp.train()

    result = time_torch(mlp, (784,), batch=4, threads=1, warmup=1, repeats=7)

    assert list(result) == RECORD_KEYS
    assert (result["engine"], result["batch"], result["threads"], result["repeats"]) == ("torch", 4, 1, 7)
    assert 0 < result["p25"] <= result["median"] <= result["p75"]
    assert torch.get_num_threads() == 3
    assert mlp.training


def test_time_onnx_record_reads_the_input_name_from_the_session(tmp_path, mlp, export_onnx):
    path = export_onnx(mlp, (784,), tmp_path / "mlp.onnx", input_name="pixels")

    result = time_onnx(path, (784,), batch=3, threads=1, warmup=1, repeats=5)

    assert list(result) == RECORD_KEYS
    assert (result["engine"], result["batch"], result["threads"]) == ("onnxruntime", 3, 1)
    assert result["repeats"] == 5
    assert 0 < result["p25"] <= result["median"] <= result["p75"]


def test_times_are_milliseconds_per_batch(mlp, clock_10ms_per_call):
    result = time_torch(mlp, (784,), batch=2, warmup=0, repeats=3)
    assert result["median"] == pytest.approx(10.0)


def test_min_time_keeps_repeating_past_repeats(onnx_models, clock_10ms_per_call):
    result = time_onnx(onnx_models["mlp"], (784,), batch=1, warmup=0, repeats=2, min_time_s=0.1)
    assert result["repeats"] == 10


def test_onnx_session_settings(onnx_models):
    options = onnx_session(onnx_models["mlp-int8"], threads=2).get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)


def test_missing_or_corrupt_onnx_is_an_artifact_error(tmp_path, corrupt_onnx):
    with pytest.raises(ArtifactError, match="not a loadable ONNX model"):
        time_onnx(corrupt_onnx, (784,), batch=1)
    with pytest.raises(ArtifactError, match="not found"):
        onnx_session(tmp_path / "missing.onnx")


def test_bad_options_are_config_errors(mlp):
    with pytest.raises(ConfigError, match="repeats"):
        time_torch(mlp, (784,), batch=1, repeats=0)


def test_time_interleaved_alternates_variants_and_takes_the_median_of_rounds():
    from wattless.measurement.latency import time_interleaved

    calls = []

    def timer(name, values):
        iterator = iter(values)

        def run():
            calls.append(name)
            return {"engine": "fake", "median": next(iterator)}

        return run

    result = time_interleaved({"a": timer("a", [5.0, 1.0, 3.0]), "b": timer("b", [2.0, 9.0, 4.0])}, rounds=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert result["a"]["median"] == 3.0 and result["b"]["median"] == 4.0
    assert result["b"]["round_medians"] == [2.0, 9.0, 4.0]
