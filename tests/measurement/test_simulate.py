"""Hardware simulation through ZigZag: per-layer energy and latency on an accelerator design with the model's own
precisions, cached per layer, labelled simulated; clear errors for unknown designs and a missing extra."""

from __future__ import annotations

import importlib.util

import pytest

import wattless
from wattless.errors import ConfigError
from wattless.measurement import simulate as sim
from wattless.measurement import zigzag

needs_zigzag = pytest.mark.skipif(importlib.util.find_spec("zigzag") is None,
                                  reason="ZigZag not installed (pip install 'wattless[hw]')")
STEPS = ["quantize.activations:bits=8", "share.kmeans:clusters=16,finetune_epochs=0"]


@pytest.fixture(scope="module")
def quantized(digits):
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [32, 16]}, epochs=1, seed=0)
    return wattless.apply_steps(model, digits, STEPS)


@needs_zigzag
def test_a_simulated_record_carries_the_models_precisions_per_layer_and_its_provenance(quantized, digits,
                                                                                       monkeypatch, tmp_path):
    monkeypatch.setenv("WATTLESS_CACHE", str(tmp_path))
    record = wattless.measure(quantized, digits, engines="torch", batches="1", repeats=3,
                              simulate="edge_tpu_like", clock_mhz=500)
    found = record["simulated"]["edge_tpu_like"]
    assert [layer["name"] for layer in found["layers"]] == ["1", "3", "5"]  # the MLP's three Linear layers
    assert all((layer["weight_size"], layer["act_size"]) == (4, 8) for layer in found["layers"])
    assert found["energy_j_per_sample"] == pytest.approx(sum(layer["energy_pj"] for layer in found["layers"]) * 1e-12)
    assert found["latency_s"] == pytest.approx(found["latency_cycles"] / 500e6)
    assert found["sparsity_modelled"] is False and "warnings" not in found
    assert record["provenance"]["simulated"]["kind"] == "simulated"
    assert f"ZigZag {sim.zigzag_version()} on edge_tpu_like" in record["provenance"]["simulated"]["by"]


@needs_zigzag
def test_layers_come_from_the_cache_the_second_time(quantized, monkeypatch, tmp_path):
    first = sim.simulate(quantized, sim.architecture("edge_tpu_like"), cache_dir=tmp_path)

    def no_zigzag(*args, **kwargs):
        raise AssertionError("ZigZag ran although every layer was cached")

    monkeypatch.setattr(zigzag, "run_layer", no_zigzag)
    assert sim.simulate(quantized, sim.architecture("edge_tpu_like"), cache_dir=tmp_path)["layers"] == first["layers"]


@needs_zigzag
def test_fp32_activations_a_design_cannot_hold_are_simulated_narrower_with_a_warning(digits, tmp_path):
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [16]}, epochs=1, seed=0)
    found = sim.simulate(model, sim.architecture("edge_tpu_like"), cache_dir=tmp_path)
    assert all(layer["act_size"] < 32 and "warning" in layer for layer in found["layers"])
    assert len(found["warnings"]) == len(found["layers"])


@needs_zigzag
def test_unknown_designs_and_rejected_files_are_one_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown architecture 'gpu'; use one of edge_tpu_like, tpu_like"):
        sim.architecture("gpu")
    broken = tmp_path / "mine.yaml"
    broken.write_text("name: mine\nmemories: {}\n")
    with pytest.raises(ConfigError, match=f"ZigZag rejected the design {broken}"):
        sim.architecture(str(broken))
    with pytest.raises(ConfigError, match="not found"):
        sim.architecture(str(tmp_path / "absent.yaml"))


def test_without_zigzag_the_error_names_the_extra(monkeypatch):
    def missing(name):
        raise zigzag.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(zigzag.metadata, "version", missing)
    with pytest.raises(ConfigError, match=r"pip install 'wattless\[hw\]'"):
        sim.architecture("edge_tpu_like")


def test_simulation_options_are_checked_before_any_work(quantized, digits):
    with pytest.raises(ConfigError, match="--clock-mhz needs --simulate"):
        wattless.measure(quantized, digits, clock_mhz=100)


@needs_zigzag
@pytest.mark.parametrize("mode, op", [("static", "Gemm"), ("dynamic", "MatMulInteger")])
def test_an_int8_onnx_file_is_simulated_at_the_8_bits_its_graph_stores(quantized, digits, monkeypatch, tmp_path,
                                                                         mode, op):
    monkeypatch.setenv("WATTLESS_CACHE", str(tmp_path))
    wattless.save(quantized, tmp_path / "m.wlz")
    wattless.export(tmp_path / "m.wlz", tmp_path / "m.onnx", int8=True, int8_mode=mode, dataset=digits)
    record = wattless.measure(tmp_path / "m.onnx", digits, engines="onnxruntime", batches="1", repeats=3,
                              simulate="edge_tpu_like")
    found = record["simulated"]["edge_tpu_like"]
    assert [layer["op"] for layer in found["layers"]] == [op] * 3
    assert all((layer["weight_size"], layer["act_size"]) == (8, 8) and "warning" not in layer
               for layer in found["layers"])
    assert record["provenance"]["simulated"]["kind"] == "simulated"


@needs_zigzag
def test_an_op_zigzag_cannot_parse_is_one_error_or_left_out_with_its_share(tmp_path):
    """ConvTranspose has no form ZigZag parses: named in the error, or listed as left out with --simulate-partial."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["h"], name="up"),
             helper.make_node("Conv", ["h", "k"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])],
                              [numpy_helper.from_array(np.ones((2, 3, 2, 2), np.float32), "w"),
                               numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "k")])
    path = tmp_path / "up.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    design = sim.architecture("edge_tpu_like")
    with pytest.raises(wattless.errors.ModelError, match=r"node up \(ConvTranspose\)"):
        sim.simulate(path, design, cache_dir=tmp_path)
    found = sim.simulate(path, design, partial=True, cache_dir=tmp_path)
    assert [layer["name"] for layer in found["layers"]] == ["conv"]
    assert [left["name"] for left in found["left_out"]] == ["up"]
    assert found["left_out_macs"] == 2 * 4 * 4 * 3 * 2 * 2 and found["simulated_macs"] == 4 * 3 * 3 * 3 * 3 * 3


@needs_zigzag
def test_inspect_splits_each_layers_simulated_energy_beside_the_estimate(quantized, monkeypatch, tmp_path):
    monkeypatch.setenv("WATTLESS_CACHE", str(tmp_path))
    path = tmp_path / "m.wlz"
    wattless.save(quantized, path)
    info = wattless.inspect(path, simulate="edge_tpu_like")
    by_name = {layer["name"]: layer for layer in info["simulated"]["layers"]}
    for layer in info["layers"]:
        parts = layer["simulated"]
        assert sum(parts.values()) == pytest.approx(by_name[layer["name"]]["energy_pj"] * 1e-12)
        assert layer["energy_j"] > 0  # the 45 nm estimate stays beside it
    with pytest.raises(ConfigError, match="one design"):
        wattless.inspect(path, simulate="edge_tpu_like,tpu_like")


def test_exported_nodes_are_mapped_to_their_layers_even_when_the_exporter_renames_weights(digits, tmp_path):
    """A Linear on a sequence exports as MatMul with a transposed, renamed constant: found by its values."""
    import dataclasses

    import onnx

    from wattless.deploy import export_onnx
    from wattless.io import deployable_module

    series = dataclasses.replace(digits, **{f"X_{s}": getattr(digits, f"X_{s}").reshape(-1, 4, 16)
                                            for s in ("train", "val", "test")})
    model = wattless.train("ts_transformer", series, model_kwargs={"patch_size": 4, "d_model": 16, "depth": 1,
                                                                   "heads": 2}, epochs=1, seed=0)
    module = deployable_module(model.module).eval()
    export_onnx(module, model.input_shape, tmp_path / "m.onnx", check=False)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "m.onnx")))
    owners = sim._weight_owners(graph, module)
    layers = {sim._module_name(node, owners) for node in graph.graph.node if node.op_type in sim.SIMULATED_OPS}
    assert {"patch_embed", "encoder.0.qkv", "encoder.0.proj", "encoder.0.fc1", "encoder.0.fc2"} <= layers
