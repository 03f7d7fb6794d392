"""Model files: round trips, determinism, imports of plain weights, and a fuzzed reader."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import wattless
from wattless.api import apply_steps
from wattless.artifact import read_artifact, write_artifact
from wattless.errors import ArtifactError, WattlessError
from wattless.io import import_weights, load, save, state_tensors


def outputs(model, X):
    with torch.no_grad():
        return model.module.eval()(torch.as_tensor(X[:50]))


def test_round_trip_gives_identical_outputs_and_metadata(tmp_path, digits, trained_mlp):
    path = tmp_path / "m.wlz"
    size = save(trained_mlp, path)
    assert size == path.stat().st_size
    loaded = load(path)
    assert torch.equal(outputs(loaded, digits.X_test), outputs(trained_mlp, digits.X_test))
    assert loaded.spec == trained_mlp.spec
    assert loaded.meta["dataset"]["name"] == "digits"
    assert loaded.meta["train"]["config"]["seed"] == 0


def test_same_model_same_bytes(tmp_path, trained_mlp):
    save(trained_mlp, tmp_path / "a.wlz")
    save(copy.deepcopy(trained_mlp), tmp_path / "b.wlz")
    assert (tmp_path / "a.wlz").read_bytes() == (tmp_path / "b.wlz").read_bytes()


def test_pruned_model_is_stored_deployed_and_smaller(tmp_path, digits, trained_mlp):
    pruned = apply_steps(trained_mlp, digits, ["prune.magnitude:sparsity=0.9,finetune_epochs=0"])
    dense_size = save(trained_mlp, tmp_path / "dense.wlz")
    sparse_size = save(pruned, tmp_path / "sparse.wlz")
    assert sparse_size < 0.5 * dense_size
    tensors, _ = read_artifact(tmp_path / "sparse.wlz")
    assert not any("parametrizations" in name for name in tensors)
    loaded = load(tmp_path / "sparse.wlz")
    assert torch.equal(outputs(loaded, digits.X_test), outputs(pruned, digits.X_test))
    assert loaded.recipe[0]["technique"] == "prune.magnitude"


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_import_plain_weights(tmp_path, digits, trained_mlp, kind):
    path = tmp_path / f"w.{kind}"
    if kind == "pt":
        torch.save(trained_mlp.module.state_dict(), path)
    else:
        save_file(state_tensors(trained_mlp.module), str(path))
    imported = import_weights(path, trained_mlp.spec, {"task": "classification"})
    assert torch.equal(outputs(imported, digits.X_test), outputs(trained_mlp, digits.X_test))


def test_import_refuses_pickled_modules_and_wrong_shapes(tmp_path, trained_mlp):
    whole = tmp_path / "whole.pt"
    torch.save(trained_mlp.module, whole)
    with pytest.raises(ArtifactError, match="state_dict"):
        import_weights(whole, trained_mlp.spec, {})
    wrong = tmp_path / "wrong.pt"
    torch.save(trained_mlp.module.state_dict(), wrong)
    with pytest.raises(ArtifactError, match="shape|fit"):
        import_weights(wrong, {**trained_mlp.spec, "kwargs": {"hidden": [33]}}, {})


def test_nan_weights_are_refused(tmp_path, trained_mlp):
    tensors = state_tensors(trained_mlp.module)
    first = next(iter(tensors))
    tensors[first] = tensors[first].clone().fill_(float("nan"))
    write_artifact(tmp_path / "nan.wlz", tensors, trained_mlp.meta)
    with pytest.raises(ArtifactError, match="NaN"):
        load(tmp_path / "nan.wlz")


def test_a_spec_asking_for_huge_layers_is_refused_before_allocating(tmp_path, trained_mlp):
    meta = copy.deepcopy(trained_mlp.meta)
    meta["model"]["kwargs"]["hidden"] = [10**9]  # 64e9 weights: building it for real would exhaust memory
    write_artifact(tmp_path / "huge.wlz", state_tensors(trained_mlp.module), meta)
    with pytest.raises(ArtifactError, match=r"the model needs \[1000000000, 64\]"):
        load(tmp_path / "huge.wlz")


def test_user_code_in_a_model_file_needs_trust(tmp_path, trained_mlp):
    meta = copy.deepcopy(trained_mlp.meta)
    meta["model"]["name"] = "os:system"
    write_artifact(tmp_path / "evil.wlz", state_tensors(trained_mlp.module), meta)
    with pytest.raises(ArtifactError, match="trust-code"):
        load(tmp_path / "evil.wlz")


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory, trained_mlp):
    path = tmp_path_factory.mktemp("fuzz") / "m.wlz"
    save(trained_mlp, path)
    return path.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_model_files_only_raise_wattless_errors(tmp_path, valid_bytes, data):
    blob = bytearray(valid_bytes)
    action = data.draw(st.sampled_from(["truncate", "flip", "overwrite"]))
    if action == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, len(blob) - 1))
            blob[position] = blob[position] ^ (1 << data.draw(st.integers(0, 7))) if action == "flip" else \
                data.draw(st.integers(0, 255))
    path = tmp_path / "fuzzed.wlz"
    path.write_bytes(bytes(blob))
    try:
        load(path)
    except WattlessError:
        pass


def test_metadata_edits_that_rename_the_model_are_refused(tmp_path, trained_mlp):
    for name in ("lenet5", "nonexistent", 3):
        meta = copy.deepcopy(trained_mlp.meta)
        meta["model"]["name"] = name
        write_artifact(tmp_path / "m.wlz", state_tensors(trained_mlp.module), meta)
        with pytest.raises(WattlessError):
            wattless.load(tmp_path / "m.wlz")


def test_load_folds_packed_weights_for_inference_and_keeps_them_on_request(trained_mlp, digits, tmp_path):
    """``load`` gives a module that runs at dense speed (no parametrization recomputes a weight per call) with the
    same outputs; ``keep_parametrizations=True`` keeps the packed form, which saving again needs."""
    import torch
    from torch.nn.utils import parametrize

    import wattless
    from wattless.errors import ConfigError

    quantized = wattless.apply_steps(trained_mlp, digits, ["quantize.ptq:bits=4"])
    wattless.save(quantized, tmp_path / "q.wlz")
    folded, kept = wattless.load(tmp_path / "q.wlz"), wattless.load(tmp_path / "q.wlz", keep_parametrizations=True)
    assert not any(parametrize.is_parametrized(m) for m in folded.module.modules())
    assert any(parametrize.is_parametrized(m) for m in kept.module.modules())
    assert not folded.module.training
    x = torch.as_tensor(digits.X_test[:32])
    with torch.no_grad():
        assert torch.equal(folded.module(x), kept.module(x))
    with pytest.raises(ConfigError, match="keep_parametrizations=True"):
        wattless.save(folded, tmp_path / "again.wlz")
    assert wattless.save(kept, tmp_path / "again.wlz") == (tmp_path / "q.wlz").stat().st_size


def test_a_model_loaded_for_inference_is_measured_and_compressed_from_its_file(trained_mlp, digits, tmp_path):
    """Measuring or compressing a folded model reads its file again, so its codes, not dense floats, are what
    counts (the file's size, its bits)."""
    import wattless

    wattless.save(wattless.apply_steps(trained_mlp, digits, ["quantize.ptq:bits=4"]), tmp_path / "q.wlz")
    folded = wattless.load(tmp_path / "q.wlz")
    record = wattless.measure(folded, digits, engines="torch", batches="1", repeats=1)
    assert record["size_bytes"] == (tmp_path / "q.wlz").stat().st_size and record["precision"] == "w4"
    result = wattless.compress(folded, digits, tmp_path / "p.wlz", steps=["prune.magnitude:sparsity=0.5,"
                                                                          "finetune_epochs=0"], measure_result=False)
    assert [step["technique"] for step in wattless.load(result.path).recipe] == ["quantize.ptq", "prune.magnitude"]


def test_integer_weights_are_refused_for_float_parameters(tmp_path, trained_mlp):
    """An int64 state_dict would be cast to floats without a word, and the model would guess (10% accuracy)."""
    path = tmp_path / "int64.pt"
    torch.save({k: v.to(torch.int64) for k, v in trained_mlp.module.state_dict().items()}, path)
    with pytest.raises(ArtifactError, match=r"weight '1.weight' holds int64 values, the model needs floating-point"):
        import_weights(path, trained_mlp.spec, {})


def test_a_raw_pickle_is_one_error_without_torch_warnings(tmp_path, trained_mlp):
    import pickle
    import warnings

    path = tmp_path / "raw.pt"
    path.write_bytes(pickle.dumps({"1.weight": [1.0]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ArtifactError, match="not a plain state_dict"):
            import_weights(path, trained_mlp.spec, {})
    assert [str(w.message) for w in caught] == []


def test_an_onnx_file_is_named_as_such_where_a_wlz_is_needed(tmp_path):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07\x12\x07pytorch")  # the start of a real ONNX protobuf
    with pytest.raises(ArtifactError, match="is an ONNX file: `wattless measure` runs it"):
        load(onnx_file)
