"""``wattless compress``: int8 ONNX deployment, pruning steps, YAML recipes, and the baseline it compares with."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import wattless

PARAMS, WEIGHTS = 64 * 32 + 32 + 32 * 10 + 10, 64 * 32 + 32 * 10


def ort_accuracy(path) -> float:
    """Accuracy on the digits test split from running ``path`` in ONNX Runtime here, outside wattless."""
    data = wattless.load_dataset("digits")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: data.X_test.astype(np.float32)})[0]
    return float((logits.argmax(axis=1) == data.y_test).mean())


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_writes_an_onnx_file_whose_accuracy_is_close_to_fp32(int8_compressed, trained):
    path, record = int8_compressed
    assert path.is_file()
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(path)
    assert record["precision"] == "int8"
    assert record["accuracy"] == pytest.approx(ort_accuracy(path))  # measured by running the very file
    assert abs(record["accuracy"] - trained[1]["test"]["accuracy"]) <= 0.03
    assert record["recipe"][-1]["technique"] == "quantize.int8"
    assert {(r["engine"], r["precision"]) for r in record["latency_ms"]} == {("onnxruntime", "int8")}
    assert record["bops"] == record["macs"] * 8 * 8
    assert record["energy_j_per_sample"]["method"] == "estimate-45nm"


def test_int8_size_is_the_files_size_and_smaller_than_fp32(cli_run, work, int8_compressed, model_path):
    path, record = int8_compressed
    assert record["size_bytes"] == path.stat().st_size
    assert record["size_bytes"] < record["baseline"]["size_bytes"] == model_path.stat().st_size
    assert cli_run("export", model_path, "-o", "fp32.onnx").code == 0
    assert record["size_bytes"] < (work / "fp32.onnx").stat().st_size  # same graph, same metadata, fp32 weights
    assert record["size_bytes_fp32"] == record["baseline"]["size_bytes_fp32"]


def test_json_has_the_baseline_measured_on_the_original(int8_compressed, trained):
    baseline = int8_compressed[1]["baseline"]
    assert baseline["name"] == "original" and baseline["precision"] == "fp32"
    assert baseline["accuracy"] == pytest.approx(trained[1]["test"]["accuracy"])
    assert baseline["params"] == PARAMS and baseline["recipe"] == []
    assert {r["batch"] for r in baseline["latency_ms"]} == {1, 8}


def test_prune_step_zeroes_half_the_weights(cli_run, work, model_path, fast):
    result = cli_run("compress", model_path, "--step", "prune.magnitude:sparsity=0.5,finetune_epochs=1",
                     "-o", "p.wlz", *fast)
    assert result.code == 0, result.err
    assert "original" in result.out and "p.wlz" in result.out  # the comparison table
    info = cli_run("inspect", "p.wlz", "--json").json()
    assert info["params"] == PARAMS
    zeros = info["params"] - info["nonzero_params"]
    assert WEIGHTS // 2 <= zeros <= WEIGHTS // 2 + 5  # half of each layer's weights; biases are kept
    (step,) = info["recipe"]
    assert step["technique"] == "prune.magnitude" and step["config"]["sparsity"] == 0.5
    assert info["size_bytes"] < model_path.stat().st_size  # zeros are packed, not stored


def test_recipe_file_with_steps(cli_run, work, model_path, fast):
    (work / "r.yaml").write_text("steps:\n  - prune.magnitude: {sparsity: 0.25, finetune_epochs: 0}\n")
    record = cli_run("compress", model_path, "--recipe", "r.yaml", "-o", "r.wlz", *fast, "--json").json()
    assert record["size_bytes"] == (work / "r.wlz").stat().st_size
    assert [s["technique"] for s in record["recipe"]] == ["prune.magnitude"]
    assert record["params"] - record["nonzero_params"] == pytest.approx(WEIGHTS * 0.25, abs=2)


def test_recipe_ending_in_quantize_int8_writes_int8_onnx(cli_run, work, model_path, fast):
    (work / "r.yaml").write_text("steps:\n  - prune.magnitude: {sparsity: 0.25, finetune_epochs: 0}\n"
                                 "  - quantize.int8: {calibration: minmax}\n")
    record = cli_run("compress", model_path, "--recipe", "r.yaml", "-o", "r.onnx", *fast, "--json").json()
    assert record["precision"] == "int8"
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(work / "r.onnx")
    assert [s["technique"] for s in record["recipe"]] == ["prune.magnitude", "quantize.int8"]
    assert record["accuracy"] == pytest.approx(ort_accuracy(work / "r.onnx"))


def test_step_quantize_int8_works_or_points_at_int8(cli_run, work, model_path, fast):
    result = cli_run("compress", model_path, "--step", "quantize.int8", "-o", "q.onnx", *fast)
    assert result.code == 0 or "--int8" in result.err, result.err


def test_a_recipe_writes_a_record_after_every_step(cli_run, work, model_path, fast):
    record = cli_run("compress", model_path, "--recipe", "prune-int8", "-o", "s.onnx", *fast, "--json").json()
    stages = [s["stage"] for s in record["steps"]]
    assert stages == ["original", "prune.structured", "quantize.int8"]
    saved = json.loads((work / "s.onnx.steps.json").read_text())
    assert [s["stage"] for s in saved] == stages
    assert saved[-1]["accuracy"] == pytest.approx(record["accuracy"])  # the same int8 file measured twice
    assert all("accuracy" in s["val"] for s in saved)


def test_max_drop_returns_a_model_within_the_budget_with_every_candidate(cli_run, work, model_path, fast):
    (work / "ladder.yaml").write_text("size:\n  - {name: ptq8, steps: [{quantize.ptq: {bits: 8}}]}\n"
                                      "  - {name: ruin, steps: [{prune.magnitude: {sparsity: 0.99, scope: layer, "
                                      "finetune_epochs: 0}}]}\n")
    record = cli_run("compress", model_path, "--max-drop", "1", "--objective", "size", "--ladder", "ladder.yaml",
                     "-o", "best.wlz", *fast, "--json").json()
    assert record["chosen"] == "ptq8" and record["size_bytes"] == (work / "best.wlz").stat().st_size
    statuses = {c["candidate"]: c["status"] for c in record["candidates"]}
    assert statuses == {"ptq8": "chosen", "ruin": "over budget"}
    assert (record["baseline"]["accuracy"] - record["accuracy"]) * 100 <= 1


def test_max_drop_with_no_candidate_within_it_is_a_user_error(cli_run, work, model_path, fast):
    (work / "ladder.yaml").write_text("size: [{name: ruin, steps: [{prune.magnitude: {sparsity: 0.99, scope: layer, "
                                      "finetune_epochs: 0}}]}]\n")
    result = cli_run("compress", model_path, "--max-drop", "0.5", "--ladder", "ladder.yaml", "-o", "b.wlz", *fast)
    assert result.code == 2 and "no candidate stays within --max-drop 0.5" in result.err
    assert "ruin" in result.out  # the table of what was tried
    assert not (work / "b.wlz").exists()


@pytest.mark.parametrize("args, message", [
    (("--recipe", "prune-int8", "--step", "quantize.ptq"), "one of --recipe, --step or --max-drop"),
    (("--recipe", "no-such-recipe"), "neither a file nor a shipped recipe"),
    (("--max-drop", "1", "--objective", "speed"), "--objective 'speed' unknown"),
    (("--recipe", "deep-compression", "--int8"), "int8 deployment writes an ONNX file"),
])
def test_bad_recipe_options_fail_before_any_work(cli_run, work, model_path, args, message):
    result = cli_run("compress", model_path, *args, "-o", "x.wlz")
    assert result.code == 2 and message in result.err, result.err
    assert not (work / "x.wlz").exists()


def test_an_invalid_recipe_fails_before_any_training(cli_run, work, model_path, monkeypatch):
    monkeypatch.setattr("wattless.pipeline.run_recipe", lambda *a, **k: pytest.fail("ran before validating"))
    (work / "r.yaml").write_text("steps:\n  - distill.hinton: {epochs: 5}\n  - quantize.ptq: {bits: 40}\n")
    result = cli_run("compress", model_path, "--recipe", "r.yaml", "-o", "x.wlz")
    assert result.code == 2 and "step 2" in result.err and "bits" in result.err


def test_dynamic_int8_needs_no_calibration_and_runs_in_onnx_runtime(cli_run, work, model_path, fast):
    record = cli_run("compress", model_path, "--int8", "--int8-mode", "dynamic", "-o", "d.onnx", *fast,
                     "--json").json()
    assert record["precision"] == "int8" and record["recipe"][-1]["config"]["mode"] == "dynamic"
    assert record["accuracy"] == pytest.approx(ort_accuracy(work / "d.onnx"))
    assert abs(record["accuracy"] - record["baseline"]["accuracy"]) <= 0.05
    exported = cli_run("export", model_path, "--int8", "--int8-mode", "dynamic", "-o", "e.onnx")
    assert exported.code == 0, exported.err  # no --dataset needed
    assert "MatMulInteger" in op_types(work / "e.onnx") or "DynamicQuantizeLinear" in op_types(work / "e.onnx")
    bad = cli_run("compress", model_path, "--int8", "--int8-mode", "fast", "-o", "x.onnx")
    assert bad.code == 2 and "--int8-mode 'fast' unknown" in bad.err


def test_max_drop_warns_which_candidates_the_output_rules_out_and_auto_keeps_the_best_format(cli_run, work,
                                                                                          model_path, fast,
                                                                                          check_user_error):
    (work / "ladder.yaml").write_text("energy:\n  - {name: int8, steps: [quantize.int8]}\n"
                                      "  - {name: ptq8, steps: [{quantize.ptq: {bits: 8}}]}\n")
    options = ("--max-drop", "50", "--objective", "energy", "--ladder", "ladder.yaml", *fast, "--quiet")
    result = cli_run("compress", model_path, *options, "-o", "best.wlz")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: -o best.wlz rules out 1 of 2 candidates, which deploy as .onnx: int8; use -o "
                        "best.onnx to try them too, or -o best.auto to keep the best in whichever format it needs"]
    result = cli_run("compress", model_path, *options, "-o", "pick.auto")
    assert result.code == 0 and "warning" not in result.err, result.err
    chosen = "pick.onnx" if (work / "pick.onnx").exists() else "pick.wlz"
    assert f"wrote {chosen}: " in result.err and not (work / "pick.auto").exists()
    check_user_error(cli_run("compress", model_path, *options, "-o", "best.auto"), "'best.wlz' already exists")
    check_user_error(cli_run("compress", model_path, "--int8", "-o", "x.auto"), "goes with --max-drop")
