"""The engine contract: every registered engine loads a model, predicts like PyTorch, and times one batch."""

from __future__ import annotations

import numpy as np
import pytest

import wattless
from wattless.errors import ConfigError
from wattless.measurement.engines import get_engine, list_engines
from wattless.measurement.latency import time_runner

TOLERANCE = {"torch": 1e-6, "onnxruntime": 1e-4, "int8": None, "native": 1e-4}
"""Max absolute difference of outputs from PyTorch's; int8 is compared by its predicted classes instead."""
INT8_AGREEMENT = 0.95
"""Share of test samples on which static int8 predicts the class PyTorch fp32 predicts (digits MLP)."""


def test_every_engine_states_its_tolerance():
    assert set(list_engines()) <= set(TOLERANCE), "a new engine needs a tolerance in this contract test"


@pytest.mark.parametrize("name", list_engines())
def test_engine_predicts_what_torch_predicts(name, trained_mlp, digits, tmp_path):
    runner = get_engine(name).load(trained_mlp, workdir=tmp_path, data=digits)
    reference = get_engine("torch").load(trained_mlp, workdir=tmp_path).predict(digits.X_test)
    outputs = runner.predict(digits.X_test)
    assert outputs.shape == reference.shape and outputs.dtype == np.float32
    if TOLERANCE[name] is None:
        agreement = np.mean(outputs.argmax(1) == reference.argmax(1))
        assert agreement >= INT8_AGREEMENT
        assert runner.precision == "int8"
    else:
        np.testing.assert_allclose(outputs, reference, atol=TOLERANCE[name], rtol=0)


@pytest.mark.parametrize("name", list_engines())
def test_engine_times_a_batch_at_a_thread_count(name, trained_mlp, digits, tmp_path):
    runner = get_engine(name).load(trained_mlp, workdir=tmp_path, data=digits)
    timing = time_runner(runner, batch=4, threads=1, warmup=1, repeats=3)
    assert (timing["engine"], timing["batch"], timing["threads"], timing["repeats"]) == (runner.engine, 4, 1, 3)
    if name == "native":  # timed by the library's own loop, the Python call's cost beside it
        assert timing["timed_by"].startswith("the library's loop") and timing["python_call_ms"] >= 0
    assert 0 < timing["p25"] <= timing["median"] <= timing["p75"]


@pytest.mark.parametrize("name", list_engines())
def test_engine_runs_an_onnx_file_as_stored_or_says_why_not(name, trained_mlp, digits, tmp_path):
    path = wattless.export(trained_mlp, tmp_path / "m.onnx")
    if name in ("torch", "native"):
        with pytest.raises(ConfigError, match="ONNX file"):
            get_engine(name).load(path, workdir=tmp_path)
        return
    runner = get_engine(name).load(path, workdir=tmp_path)
    assert runner.precision == "fp32"  # the file as stored, not re-quantized
    np.testing.assert_allclose(runner.predict(digits.X_test[:16]),
                               get_engine("torch").load(trained_mlp, workdir=tmp_path).predict(digits.X_test[:16]),
                               atol=1e-4)


def test_an_unknown_engine_is_one_clear_error():
    with pytest.raises(ConfigError, match="engine 'tpu' unknown; use one or more of torch, onnxruntime, int8, native"):
        get_engine("tpu")
