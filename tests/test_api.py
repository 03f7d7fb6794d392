"""The Python API end to end on built-in data: compress to int8, measure, export."""

import os

import pytest

import wattless
from wattless.deploy import OnnxModel
from wattless.errors import ConfigError, DataError

RECORD_KEYS = {"accuracy", "params", "nonzero_params", "size_bytes", "size_bytes_fp32", "compression_ratio",
               "macs", "bops", "latency_ms", "energy_j_per_sample", "model", "dataset", "recipe", "seed", "env"}


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory, digits):
    """A model large enough (41k weights) that int8 storage outweighs the ONNX graph's own bytes."""
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [256, 96]}, epochs=4, lr=1e-2, seed=0)
    path = tmp_path_factory.mktemp("api") / "m.wlz"
    wattless.save(model, path)
    return path


@pytest.fixture(scope="module")
def fp32_record(fp32_file, digits):
    return wattless.measure(fp32_file, digits, batches=(1, 8), repeats=3)


def test_measure_record_has_every_key(fp32_record, fp32_file):
    assert RECORD_KEYS <= set(fp32_record)
    assert fp32_record["size_bytes"] == os.path.getsize(fp32_file)
    assert fp32_record["macs"] == 64 * 256 + 256 * 96 + 96 * 10
    assert fp32_record["bops"] == fp32_record["macs"] * 32 * 32
    assert fp32_record["energy_j_per_sample"]["method"] == "estimate-45nm"
    engines = {(r["engine"], r["precision"], r["batch"]) for r in fp32_record["latency_ms"]}
    assert engines == {(e, p, b) for e, p in [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
                       for b in (1, 8)}
    for row in fp32_record["latency_ms"]:
        assert row["threads"] == 1 and row["p25"] <= row["median"] <= row["p75"]


def test_int8_accuracy_comes_from_onnx_runtime(tmp_path, fp32_file, fp32_record, digits):
    out = wattless.compress(fp32_file, digits, tmp_path / "m.int8.onnx", int8=True)
    record = wattless.measure(out, digits, batches=(1,), repeats=3)
    predictions = OnnxModel(out).predict(digits.X_test).argmax(axis=1)
    assert record["accuracy"] == pytest.approx(float((predictions == digits.y_test).mean()))
    assert abs(record["accuracy"] - fp32_record["accuracy"]) < 0.03
    assert record["precision"] == "int8"
    assert record["size_bytes"] == os.path.getsize(out) < 0.4 * fp32_record["size_bytes_fp32"]
    assert record["bops"] == record["macs"] * 8 * 8
    assert record["recipe"][-1]["technique"] == "quantize.int8"
    assert record["energy_j_per_sample"]["value"] < fp32_record["energy_j_per_sample"]["value"]


def test_export_fp32_onnx_matches_torch(tmp_path, trained_mlp, digits):
    path = wattless.export(trained_mlp, tmp_path / "m.onnx")
    record = wattless.measure(path, digits, batches=(1,), repeats=3)
    assert record["accuracy"] == pytest.approx(
        wattless.measure(trained_mlp, digits, batches=(1,), repeats=3, engines=("torch",))["accuracy"])


def test_compress_refuses_bad_requests(tmp_path, fp32_file, digits):
    with pytest.raises(ConfigError, match="onnx"):
        wattless.compress(fp32_file, digits, tmp_path / "x.wlz", int8=True)
    with pytest.raises(ConfigError, match="nothing to do"):
        wattless.compress(fp32_file, digits, tmp_path / "x.wlz")
    with pytest.raises(ConfigError, match="unknown technique"):
        wattless.compress(fp32_file, digits, tmp_path / "x.wlz", steps=["prune.nothing"])
    assert not (tmp_path / "x.wlz").exists()


def test_compress_writes_nothing_when_measuring_the_result_fails(tmp_path, fp32_file, digits, monkeypatch):
    def fails(*args, **kwargs):
        raise DataError("the measurement failed")

    monkeypatch.setattr(wattless.api._compress, "_before_after", fails)
    out = tmp_path / "x.wlz"
    out.write_bytes(b"the user's file")
    with pytest.raises(DataError, match="the measurement failed"):
        wattless.compress(fp32_file, digits, out, steps=["prune.magnitude:sparsity=0.5,finetune_epochs=0"],
                          force=True)
    assert out.read_bytes() == b"the user's file"  # the old file stays whole, and nothing was added beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wlz"]


def test_measure_refuses_data_of_another_shape(fp32_file):
    with pytest.raises(DataError, match=r"shape \[64\].*\[30\]"):
        wattless.measure(fp32_file, "breast-cancer", repeats=1)


def test_csv_regression_end_to_end(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    colour = rng.choice(["red", "green"], size=300)
    y = 10 + 3 * x[:, 0] - 2 * x[:, 1] + (colour == "red") * 4 + rng.normal(scale=0.1, size=300)
    lines = ["a,b,c,colour,price"] + [f"{a},{b},{c},{k},{t}" for (a, b, c), k, t in zip(x, colour, y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    data = wattless.load_dataset(f"csv:{tmp_path / 'd.csv'}", target="price")
    assert data.task == "regression" and data.input_shape == (5,)
    model = wattless.train("mlp", data, epochs=60, lr=3e-3, seed=0)
    record = wattless.measure(model, data, batches=(1,), repeats=2, engines=("torch",))
    assert record["r2"] > 0.9 and record["rmse"] < 1.5
