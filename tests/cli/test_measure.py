"""``wattless measure`` on a .wlz: the documented record keys, their numbers, engines and the table output."""

from __future__ import annotations

import pytest

RECORD_KEYS = {"accuracy", "params", "nonzero_params", "size_bytes", "size_bytes_fp32", "compression_ratio", "macs",
               "bops", "latency_ms", "energy_j_per_sample", "model", "dataset", "recipe", "seed", "env"}
PARAMS = 64 * 32 + 32 + 32 * 10 + 10  # the session model: 64-32-10
MACS = 64 * 32 + 32 * 10


@pytest.fixture(scope="module")
def record(cli_run, model_path, fast) -> dict:
    """``measure --json`` of the session model without --dataset: it defaults to the model's own."""
    return cli_run("measure", model_path, *fast, "--json").json()


def test_record_has_every_documented_key(record):
    assert RECORD_KEYS <= record.keys()


def test_record_describes_the_model_and_its_file(record, trained):
    path, printed = trained
    assert (record["model"], record["dataset"], record["recipe"], record["seed"]) == ("mlp", "digits", [], 0)
    assert record["accuracy"] == pytest.approx(printed["test"]["accuracy"])  # the test split, as train reported
    assert record["size_bytes"] == path.stat().st_size
    assert record["params"] == PARAMS and 0 < record["nonzero_params"] <= PARAMS
    assert PARAMS * 4 < record["size_bytes_fp32"] < PARAMS * 4 + 4096  # fp32 weights plus a small header
    assert record["compression_ratio"] == pytest.approx(record["size_bytes_fp32"] / record["size_bytes"])
    assert record["macs"] == MACS
    assert record["bops"] == MACS * 32 * 32  # fp32 weights times fp32 activations
    assert record["env"]["threads"] == 1


def test_latency_is_timed_on_every_engine_and_batch(record):
    timed = {(r["engine"], r["precision"], r["batch"]) for r in record["latency_ms"]}
    engines = {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    assert timed == {(engine, precision, batch) for engine, precision in engines for batch in (1, 8)}
    assert len(record["latency_ms"]) == 6
    for row in record["latency_ms"]:
        assert row["threads"] == 1
        assert 0 < row["p25"] <= row["median"] <= row["p75"]


def test_energy_is_a_labelled_estimate(record):
    energy = record["energy_j_per_sample"]
    assert energy["method"] == "estimate-45nm"
    assert 0 < energy["value"] < 1e-3  # a 2k-MAC model: microjoules, not millijoules


def test_dataset_given_explicitly_gives_the_same_accuracy(cli_run, model_path, record):
    explicit = cli_run("measure", model_path, "--dataset", "digits", "--engines", "torch", "--batch", "1",
                       "--repeats", "2", "--json").json()
    assert explicit["accuracy"] == record["accuracy"]


def test_engines_torch_times_only_torch(cli_run, model_path, fast):
    result = cli_run("measure", model_path, "--engines", "torch", *fast, "--json").json()
    assert {(r["engine"], r["batch"]) for r in result["latency_ms"]} == {("torch", 1), ("torch", 8)}


def test_table_output_shows_the_accuracy(cli_run, model_path, record):
    result = cli_run("measure", model_path, "--engines", "torch", "--batch", "1", "--repeats", "2")
    assert result.code == 0, result.err
    assert "accuracy" in result.out
    assert f"{record['accuracy'] * 100:.2f}" in result.out
    assert f"{record['size_bytes']:,}" in result.out and "estimate-45nm" in result.out


def test_engines_int8_times_only_int8(cli_run, model_path):
    result = cli_run("measure", model_path, "--engines", "int8", "--batch", "1", "--repeats", "2", "--json").json()
    assert {(r["engine"], r["precision"]) for r in result["latency_ms"]} == {("onnxruntime", "int8")}


def test_engines_is_honoured_or_refused_for_onnx_files(cli_run, int8_compressed):
    result = cli_run("measure", int8_compressed[0], "--engines", "torch", "--batch", "1", "--repeats", "2", "--json")
    if result.code == 0:
        assert all(row["engine"] == "torch" for row in result.json()["latency_ms"])
    else:
        assert result.code == 2 and result.err.startswith("error:") and "--engines" in result.err


def test_batch_too_large_for_memory_is_a_user_error(cli_run, model_path, check_user_error):
    result = cli_run("measure", model_path, "--engines", "torch", "--batch", str(10**12), "--repeats", "1")
    check_user_error(result, "--batch")


def test_inspect_shows_where_the_file_bytes_go(cli_run, model_path):
    info = cli_run("inspect", model_path, "--json").json()
    found = info["file_bytes"]
    assert found["header"]["bytes"] + sum(row["bytes"] for row in found["layers"]) == info["size_bytes"]
    assert [row["name"] for row in found["layers"]] == [layer["name"] for layer in info["layers"]]
    assert found["total"]["ratio"] == pytest.approx(info["size_bytes"] / found["total"]["floor"])
    text = cli_run("inspect", model_path)
    assert "Bytes in the file" in text.out and "File/floor" in text.out


def test_inspect_shows_per_layer_energy_and_shares(cli_run, model_path):
    info = cli_run("inspect", model_path, "--json").json()
    layers = info["layers"]
    assert [layer["shape"] for layer in layers] == [[32, 64], [10, 32]]
    assert sum(layer["energy_share"] for layer in layers) == pytest.approx(1.0)
    assert sum(layer["energy_j"] for layer in layers) == pytest.approx(info["energy_j_per_sample"]["value"])
    assert info["energy_j_per_sample"]["method"] == "estimate-45nm"
    assert info["bops"] == info["macs"] * 32 * 32
    for layer, raw in zip(layers, [(64 * 32 + 32) * 4, (32 * 10 + 10) * 4], strict=True):
        assert raw / 2 < layer["bytes"] <= raw  # fp32 weights, zstd where it saves a little
    assert sum(layer["bytes"] for layer in layers) < info["size_bytes"]
    text = cli_run("inspect", model_path)
    assert text.code == 0 and "Energy share (%)" in text.out and "MicroNet score 2.000" in text.out
