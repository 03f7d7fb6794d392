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


class _FakeRunner:
    """A runner whose timed calls are recorded by name, each lasting 10 ms on the fake clock."""

    engine, precision, max_threads = "fake", "fp32", None

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def call(self, batch, threads):
        import contextlib

        @contextlib.contextmanager
        def run():
            yield lambda: self.calls.append((self.name, batch))

        return run()


def test_time_variants_times_every_variant_in_every_round_in_turn(clock_10ms_per_call):
    from wattless.measurement.latency import time_variants

    calls = []
    runners = {name: {"fake": _FakeRunner(name, calls)} for name in ("fp32", "pruned")}
    rows = time_variants(runners, batches=(1, 8), repeats=6, rounds=3)

    one_round = [("fp32", 1)] * 2 + [("fp32", 8)] * 2 + [("pruned", 1)] * 2 + [("pruned", 8)] * 2
    warmup = 10  # untimed calls before each timed block
    timed = [call for i, call in enumerate(calls) if i % (warmup + 2) >= warmup]
    assert timed == one_round * 3  # each round runs every variant, not one variant after the other
    assert [(row["engine"], row["batch"], row["repeats"]) for row in rows["pruned"]] == [("fake", 1, 6), ("fake", 8, 6)]
    assert rows["fp32"][0]["round_medians"] == [10.0, 10.0, 10.0]
    assert rows["fp32"][0]["p25"] == rows["fp32"][0]["p75"] == 10.0  # the spread: quartiles of the round medians


def test_time_models_times_files_together_on_their_own_engines(onnx_models, mlp, monkeypatch):
    import wattless
    from wattless.measurement import latency

    order = []

    def fake_time_runner(runner, *, batch, threads, repeats, **_):
        order.append((runner.engine, batch))
        return {"engine": runner.engine, "batch": batch, "threads": threads, "median": 1.0, "p25": 1.0,
                "p75": 1.0, "repeats": repeats, "precision": runner.precision}

    monkeypatch.setattr(latency, "time_runner", fake_time_runner)
    model = wattless.wrap(mlp, input_shape=(784,), task="classification")
    rows = latency.time_models({"module": model, "onnx": onnx_models["mlp"]}, None,
                               engines={"module": ("torch",), "onnx": ("torch",)}, batches=(1,), repeats=4,
                               rounds=2)
    assert order == [("torch", 1), ("onnxruntime", 1)] * 2  # an .onnx file runs in ONNX Runtime as stored
    assert [row["engine"] for row in rows["onnx"]] == ["onnxruntime"] and rows["module"][0]["repeats"] == 4
