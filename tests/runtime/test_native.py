"""The native C runtime: every zoo architecture and stored form runs from its packed weights with PyTorch's outputs,
the code compiles with warnings as errors, and bad requests are one clear error with nothing written."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest
import torch

import wattless
from wattless.errors import ConfigError, ModelError
from wattless.measurement.engines import get_engine
from wattless.models import build_model
from wattless.runtime.build import SANITIZE_FLAGS, STRICT_FLAGS, compile_c
from wattless.runtime.export import export_c
from wattless.runtime.weights import packed_weight

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler on this machine")
FLOAT_TOLERANCE = 1e-4
"""Largest output difference from PyTorch relative to the largest output (the float paths differ only in the order
of their sums)."""


def reshaped(data, shape):
    return dataclasses.replace(data, **{f"X_{s}": getattr(data, f"X_{s}").reshape(-1, *shape)
                                        for s in ("train", "val", "test")})


def random_images(data, shape, rows=300):
    rng = np.random.default_rng(0)
    return dataclasses.replace(data, **{f"X_{s}": rng.standard_normal((min(rows, len(getattr(data, f"y_{s}"))),
                                                                       *shape)).astype(np.float32)
                                        for s in ("train", "val", "test")},
                               **{f"y_{s}": getattr(data, f"y_{s}")[:rows] for s in ("train", "val", "test")})


@pytest.fixture(scope="module")
def zoo(digits):
    """Small trained zoo models with the data they take: (model, data) by name."""
    images, series = reshaped(digits, (1, 8, 8)), reshaped(digits, (4, 16))
    padded = dataclasses.replace(digits, **{f"X_{s}": np.pad(getattr(images, f"X_{s}"), ((0, 0), (0, 0), (2, 2),
                                                                                         (2, 2)))
                                            for s in ("train", "val", "test")})
    rgb = random_images(digits, (3, 16, 16))
    spec = {"mlp": ("mlp", digits, {"hidden": [32, 16]}), "lenet5": ("lenet5", padded, {}),
            "cnn": ("cnn", images, {"channels": [8, 16], "hidden": 16, "batch_norm": True}),
            "resnet18": ("resnet18", rgb, {"width": 0.0625}), "mobilenet": ("mobilenet", rgb, {"width": 0.25,
                                                                                              "groups": 2}),
            "ts_transformer": ("ts_transformer", series, {"patch_size": 4, "d_model": 16, "depth": 1, "heads": 2})}
    return {name: (wattless.train(model, data, model_kwargs=kwargs, epochs=1, seed=0), data)
            for name, (model, data, kwargs) in spec.items()}


CASES = [
    ("mlp", []), ("mlp", ["prune.magnitude:sparsity=0.9,finetune_epochs=0", "share.kmeans:finetune_epochs=0,"
                                                                            "bias_bits=8"]),
    ("mlp", ["distill.hinton:student=mlp,student_kwargs={hidden: [8]},epochs=1"]), ("mlp", ["factorize.svd:rank=4,"
                                                                                          "finetune_epochs=0"]),
    ("mlp", ["quantize.ptq:bits=3,landmarks=histogram"]), ("lenet5", ["quantize.ptq:bits=4"]),
    ("lenet5", ["share.kmeans:clusters=8,finetune_epochs=0"]), ("lenet5", ["factorize.tucker:finetune_epochs=0"]),
    ("cnn", ["quantize.ptq:bits=8"]), ("cnn", ["prune.structured:ratio=0.5,finetune_epochs=0"]),
    ("resnet18", []), ("resnet18", ["quantize.ptq:bits=4"]), ("mobilenet", ["share.kmeans:clusters=8,"
                                                                           "finetune_epochs=0"]),
    ("ts_transformer", []), ("ts_transformer", ["quantize.ptq:bits=4"]),
]


@pytest.mark.parametrize("name, steps", CASES, ids=[f"{n}-{'+'.join(s.split(':')[0] for s in st) or 'fp32'}"
                                                    for n, st in CASES])
def test_native_outputs_match_pytorch(name, steps, zoo, tmp_path):
    model, data = zoo[name]
    model = wattless.apply_steps(model, data, steps) if steps else model
    runner = get_engine("native").load(model, workdir=tmp_path)
    expected = get_engine("torch").load(model, workdir=tmp_path).predict(data.X_test)
    got = runner.predict(data.X_test)
    assert np.abs(got - expected).max() <= FLOAT_TOLERANCE * np.abs(expected).max()
    if any(step.startswith(("quantize", "share")) for step in steps):  # kept packed, not expanded to floats
        assert any(layer["form"] != "f32" for layer in runner.footprint["layers"])
    if steps and steps[0].startswith("prune.magnitude"):  # the largest layer is stored sparse, as codes
        largest = max(runner.footprint["layers"], key=lambda layer: layer["weights"])
        assert largest["sparse"] and largest["form"] == "lut" and largest["entries"] < largest["weights"] / 5
        assert runner.footprint["rodata_bytes"] < sum(layer["weights"] for layer in runner.footprint["layers"])


def test_activation_quantizers_run_natively_with_pytorch_classes(zoo, tmp_path):
    model, data = zoo["mlp"]
    quantized = wattless.apply_steps(model, data, ["quantize.activations:bits=8", "quantize.ptq:bits=8"])
    got = get_engine("native").load(quantized, workdir=tmp_path).predict(data.X_test)
    expected = get_engine("torch").load(quantized, workdir=tmp_path).predict(data.X_test)
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.99  # a rounding flipped by summation order: one step


def integer_reference(model, X: np.ndarray) -> np.ndarray:
    """The MLP in integers as the integer kernel states it: each layer's input quantized by its activation quantizer
    (q - z), int64 sums of code * (q - z) and of (q - z), then sx * (scale * sum + offset * sum_q) + bias."""
    h = X.astype(np.float32)
    layers = [m for m in model.module.modules() if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(layers):
        quantizer, packed = layer.input_quant, packed_weight(layer)
        sx, z, levels = float(quantizer.scale), float(quantizer.zero_point), 2 ** int(quantizer.bits)
        q = (np.clip(np.rint(h / np.float32(sx)) + z, 0, levels - 1) - z).astype(np.int64)
        codes = packed.codes.reshape(layer.out_features, -1).numpy().astype(np.int64)
        scale = packed.scale.detach().numpy().reshape(-1).astype(np.float64)
        offset = packed.offset.detach().numpy().reshape(-1).astype(np.float64)
        h = sx * (scale * (q @ codes.T) + offset * q.sum(1, keepdims=True)) + layer.bias.detach().numpy()
        h = (np.maximum(h, 0) if i < len(layers) - 1 else h).astype(np.float32)
    return h


def test_quantized_activations_and_8_bit_codes_run_in_integers_as_the_reference_does(zoo, tmp_path):
    model, data = zoo["mlp"]
    quantized = wattless.apply_steps(model, data, ["quantize.activations:bits=8", "quantize.ptq:bits=8"])
    runner = get_engine("native").load(quantized, workdir=tmp_path)
    assert all(layer["integer"] for layer in runner.footprint["layers"])
    got, expected = runner.predict(data.X_test), integer_reference(quantized, data.X_test)
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()  # the int32 sums are exact


def test_the_library_compiles_with_warnings_as_errors_and_the_sanitizers(zoo, tmp_path):
    model, data = zoo["cnn"]
    exported = export_c(wattless.apply_steps(model, data, ["quantize.ptq:bits=4"]), tmp_path / "c")
    built = compile_c([exported.path / "model.c"], tmp_path / "asan.so", flags=(*STRICT_FLAGS, *SANITIZE_FLAGS),
                      shared=True)
    program = compile_c([exported.path / "main.c", exported.path / "model.c"], tmp_path / "predict",
                        flags=(*STRICT_FLAGS, *SANITIZE_FLAGS))
    sample = " ".join(map(str, data.X_test[0].reshape(-1)))
    done = subprocess.run([str(program.path)], input=sample, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 11 and done.stdout.splitlines()[-1].startswith("class ")
    assert built.sections["rodata"] > 0 and built.sections["text"] > 0


ARENA_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
int main(void) {
    float input[WL_INPUT_SIZE] = {0}, output[WL_OUTPUT_SIZE];
    for (int i = 0; i < WL_OUTPUT_SIZE; i++) output[i] = 7.0f;
    void *small = malloc(WL_ARENA_BYTES - 4), *exact = malloc(WL_ARENA_BYTES);
    int refused = wl_predict(input, output, small, WL_ARENA_BYTES - 4);
    for (int i = 0; i < WL_OUTPUT_SIZE; i++) if (output[i] != 7.0f) return 3;
    int ran = wl_predict(input, output, exact, WL_ARENA_BYTES); /* the sanitizer stops any write past its end */
    printf("%d %d\n", refused, ran);
    free(small);
    free(exact);
    return 0;
}
"""


def test_an_arena_too_small_is_an_error_code_and_the_exact_one_is_never_overrun(zoo, tmp_path):
    model, data = zoo["ts_transformer"]  # attention's scratch space lives in the arena too
    exported = export_c(model, tmp_path / "c")
    (tmp_path / "probe.c").write_text(ARENA_PROBE)
    program = compile_c([tmp_path / "probe.c", exported.path / "model.c"], tmp_path / "probe",
                        flags=(*STRICT_FLAGS, *SANITIZE_FLAGS, f"-I{exported.path}"))
    done = subprocess.run([str(program.path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0"]  # WL_ERR_ARENA, writing nothing; then WL_OK within the arena


BATCH_PROBE = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
enum { N = 19 }; /* two tiles and three samples one at a time */
int main(void) {
    float *inputs = malloc(sizeof(float) * N * WL_INPUT_SIZE), *one = malloc(sizeof(float) * N * WL_OUTPUT_SIZE);
    float *batch = malloc(sizeof(float) * N * WL_OUTPUT_SIZE);
    void *arena = malloc(WL_ARENA_BYTES), *batch_arena = malloc(WL_BATCH_ARENA_BYTES);
    for (int i = 0; i < N * WL_INPUT_SIZE; i++) inputs[i] = (float)((i * 7919) % 2003) / 1001.0f - 1.0f;
    for (int i = 0; i < N; i++)
        if (wl_predict(inputs + i * WL_INPUT_SIZE, one + i * WL_OUTPUT_SIZE, arena, WL_ARENA_BYTES)) return 3;
    if (wl_predict_batch(N, inputs, batch, batch_arena, WL_BATCH_ARENA_BYTES)) return 4;
    float worst = 0.0f, largest = 1e-6f;
    for (int i = 0; i < N * WL_OUTPUT_SIZE; i++) {
        worst = fmaxf(worst, fabsf(one[i] - batch[i]));
        largest = fmaxf(largest, fabsf(one[i]));
    }
    printf("%g\n", worst / largest);
    free(inputs); free(one); free(batch); free(arena); free(batch_arena);
    return 0;
}
"""


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_the_vector_and_tile_paths_stay_in_bounds_and_agree_with_one_sample_at_a_time(name, zoo, tmp_path):
    """Sparse codes read 8 at a time, tiles of samples and (on x86-64 with AVX2) the vector kernels, under the
    address and undefined-behaviour sanitizers with arenas of exactly the stated sizes."""
    model, data = zoo[name]
    steps = ["prune.magnitude:sparsity=0.9,scope=layer,finetune_epochs=0", "share.kmeans:finetune_epochs=0"]
    exported = export_c(wattless.apply_steps(model, data, steps), tmp_path / "c")
    (tmp_path / "probe.c").write_text(BATCH_PROBE)
    program = compile_c([tmp_path / "probe.c", exported.path / "model.c"], tmp_path / "probe",
                        flags=("-O2", "-march=native", *STRICT_FLAGS, *SANITIZE_FLAGS, f"-I{exported.path}"))
    done = subprocess.run([str(program.path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) <= FLOAT_TOLERANCE
    if name == "mlp":
        assert exported.batch_arena_bytes > exported.arena_bytes  # linear layers only: it runs tiles


def test_the_header_states_the_memory_and_the_preprocessing(zoo, tmp_path):
    model, data = zoo["mlp"]
    exported = export_c(model, tmp_path / "c")
    header = (exported.path / "model.h").read_text()
    assert f"#define WL_ARENA_BYTES {exported.arena_bytes}" in header
    assert f"#define WL_WEIGHTS_BYTES {exported.weights_bytes}" in header
    assert "wl_preprocess" in header and "(raw - mean) / std per feature" in header
    assert sorted(p.name for p in exported.path.iterdir()) == ["README.md", "main.c", "model.c", "model.h"]


def test_names_cannot_end_a_c_comment_and_inject_code(zoo, tmp_path):
    import copy
    import re

    model, _ = zoo["mlp"]
    model = copy.copy(model)
    model.meta = {**model.meta, "dataset": {**(model.meta.get("dataset") or {}), "name": "x */ int evil; /* y"}}
    exported = export_c(model, tmp_path / "c")
    for name in ("model.h", "model.c"):
        source = (exported.path / name).read_text()
        assert "int evil" in source  # the name is there, as text ...
        assert "evil" not in re.sub(r"/\*.*?\*/", "", source, flags=re.S)  # ... and only inside comments


class SplitThenConcat(torch.nn.Module):
    """Channels split (unevenly, then in chunks) into branches and concatenated back, with a skip connection."""

    def __init__(self):
        super().__init__()
        self.stem, self.left, self.right = (torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.Conv2d(2, 2, 3, padding=1),
                                            torch.nn.Conv2d(4, 4, 1))
        self.head = torch.nn.Linear(6 * 8 * 8, 3)

    def forward(self, x):
        stem = torch.relu(self.stem(x))
        left, right = torch.split(stem, [2, 4], dim=1)
        a, b = right.chunk(2, dim=1)
        merged = torch.cat([self.left(left), self.right(torch.cat([b, a], dim=1))], dim=1) + stem
        return self.head(merged.flatten(1))


def test_splits_and_concats_run_natively(tmp_path):
    torch.manual_seed(0)
    spec = {"name": "mlp", "kwargs": {}, "input_shape": [1, 8, 8], "num_outputs": 3}
    model = wattless.WattlessModel(SplitThenConcat().eval(), {"model": spec, "task": "classification", "recipe": []})
    result = export_c(model, tmp_path / "c")  # compiled and compared with PyTorch when a compiler is here
    assert {layer["op"] for layer in result.layers} >= {"conv", "linear"}
    assert "wl_take_blocks" in (tmp_path / "c" / "model.c").read_text()


def test_an_unsupported_layer_is_refused_naming_it_and_nothing_is_written(tmp_path):
    spec = {"name": "mlp", "kwargs": {}, "input_shape": [4], "num_outputs": 2}
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ELU(), torch.nn.Linear(4, 2))
    model = wattless.WattlessModel(module, {"model": spec, "task": "classification", "recipe": []})
    with pytest.raises(ModelError, match=r"cannot run layer '1' \(ELU\); it supports: Linear"):
        export_c(model, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_no_compiler_names_the_package_to_install(zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="no C compiler 'cc' found; install one: apt-get install gcc"):
        get_engine("native").load(zoo["mlp"][0], workdir=tmp_path)


def test_a_compiler_error_names_its_first_line_and_keeps_the_sources(zoo, tmp_path, monkeypatch):
    import wattless.runtime.export as export_module

    real = export_module.render
    monkeypatch.setattr(export_module, "render", lambda name, context: real(name, context) + (
        "\nthis is not C;\n" if name == "model.c.j2" else ""))
    with pytest.raises(ConfigError, match=r"the C compiler failed: .*error.*\(sources kept in .*\.c\.") as error:
        export_c(zoo["mlp"][0], tmp_path / "c")
    assert not (tmp_path / "c").exists()
    kept = str(error.value).rsplit("sources kept in ", 1)[1].rstrip(")")
    assert (tmp_path / kept.split("/")[-1] / "model.c").exists()


def test_a_model_too_large_for_c_arrays_is_refused_before_writing(tmp_path):
    spec = {"name": "mlp", "kwargs": {"hidden": [4096, 4096]}, "input_shape": [784], "num_outputs": 10}
    model = wattless.WattlessModel(build_model(spec), {"model": spec, "task": "classification", "recipe": []})
    with pytest.raises(ConfigError, match="MB of weights; the native C export writes weights as C arrays"):
        export_c(model, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []
