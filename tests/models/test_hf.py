"""Hugging Face architectures (extra hf): built from a config sized for the data, behind one adapter so techniques,
engines and exporters see batch -> logits; saved and rebuilt from their config; clear errors for unknown fields,
pretrained weights that are not cached, and a missing extra."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

import wattless
from wattless.errors import ConfigError, ModelError

needs_hf = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                              reason="Hugging Face transformers not installed (pip install 'wattless[hf]')")


def reshaped(data, shape):
    return dataclasses.replace(data, **{f"X_{s}": getattr(data, f"X_{s}").reshape(-1, *shape)
                                        for s in ("train", "val", "test")})


@needs_hf
@pytest.mark.parametrize("name, shape", [("hf:vit", (1, 8, 8)), ("hf:convnext", (1, 8, 8)), ("hf:resnet", (1, 8, 8)),
                                         ("hf:mobilevit", (1, 8, 8)), ("hf:patchtst", (4, 16))])
def test_an_hf_model_trains_saves_and_rebuilds_from_its_config(name, shape, digits, tmp_path):
    data = reshaped(digits, shape)
    model = wattless.train(name, data, epochs=1, seed=0)
    wattless.save(model, tmp_path / "m.wlz")
    loaded = wattless.load(tmp_path / "m.wlz")  # library code built from a config: no trust_code needed
    x = torch.from_numpy(data.X_test[:3])
    assert torch.allclose(loaded.module(x), model.module.eval()(x), atol=1e-5)
    assert loaded.module(x).shape == (3, 10)


@needs_hf
def test_a_bert_encoder_classifies_token_ids(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=(120, 12))
    labels = (tokens[:, 0] > 25).astype(np.int64)  # a rule the model can learn from the first token
    data = wattless.Dataset.from_arrays(tokens, labels)
    model = wattless.train("hf:bert", data, model_kwargs={"vocab_size": 50}, epochs=1, seed=0)
    record = wattless.measure(model, data, engines="torch,onnxruntime", batches="1", repeats=3)
    assert record["accuracy"] == pytest.approx(record["accuracy"]) and 0 <= record["accuracy"] <= 1
    assert {entry["engine"] for entry in record["latency_ms"]} == {"torch", "onnxruntime"}


@needs_hf
def test_pruning_and_int8_run_on_an_hf_model(digits, tmp_path):
    data = reshaped(digits, (1, 8, 8))
    model = wattless.train("hf:vit", data, epochs=1, seed=0)
    pruned = wattless.compress(model, data, tmp_path / "p.onnx", steps=["prune.magnitude:sparsity=0.5"], int8=True,
                               int8_mode="dynamic", batches="1", repeats=3)
    assert pruned.record["size_bytes"] < pruned.baseline["size_bytes"]


@needs_hf
def test_bad_hf_requests_are_one_error(digits):
    data = reshaped(digits, (1, 8, 8))
    with pytest.raises(ModelError, match="unknown config field.*hidden_sizez"):
        wattless.train("hf:vit", data, model_kwargs={"hidden_sizez": 3}, epochs=0)
    with pytest.raises(ModelError, match="not in the local Hugging Face cache and wattless does not download"):
        wattless.train("hf:vit", data, model_kwargs={"pretrained": "google/vit-base-patch16-224"}, epochs=0)
    with pytest.raises(ModelError, match="unknown Hugging Face architecture 'hf:gpt'"):
        wattless.train("hf:gpt", data, epochs=0)
    with pytest.raises(ModelError, match="takes samples of rank 2"):
        wattless.train("hf:patchtst", data, epochs=0)


def test_without_transformers_the_error_names_the_extra(monkeypatch, digits):
    import wattless.models.hf as hf

    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(hf.importlib, "import_module", missing)
    with pytest.raises(ConfigError, match=r"pip install 'wattless\[hf\]'"):
        wattless.train("hf:vit", reshaped(digits, (1, 8, 8)), epochs=0)
