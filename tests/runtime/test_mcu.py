"""The exported library for a microcontroller: its Cortex-M4F footprint from the object's sections, and under QEMU
the same predictions as the PC build (skipped where the Arm toolchain or QEMU is not installed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import wattless
from wattless.errors import ConfigError
from wattless.measurement.engines import get_engine
from wattless.runtime import mcu
from wattless.runtime.export import export_c

needs_arm = pytest.mark.skipif(mcu.mcu_compiler() is None, reason="no arm-none-eabi-gcc (apt-get install "
                                                                  "gcc-arm-none-eabi)")
COMPRESS = ["prune.magnitude:sparsity=0.8,finetune_epochs=1", "share.kmeans:finetune_epochs=0"]


@pytest.fixture(scope="module")
def compressed(digits):
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [32, 16]}, epochs=10, seed=0)
    return wattless.apply_steps(model, digits, COMPRESS), digits


@needs_arm
def test_the_native_engine_reports_the_cortex_m4_footprint_from_the_object(compressed, tmp_path):
    model, _ = compressed
    footprint = get_engine("native").load(model, workdir=tmp_path).footprint
    assert footprint["mcu_flash_bytes"] == (footprint["mcu_text_bytes"] + footprint["mcu_rodata_bytes"]
                                            + footprint["mcu_data_bytes"])
    assert footprint["mcu_rodata_bytes"] >= footprint["weights_bytes"] * 0.9  # the weights, as const data
    assert footprint["mcu_ram_bytes"] >= footprint["arena_bytes"] + footprint["mcu_stack_bytes"] > 0
    assert "-mcpu=cortex-m4" in footprint["mcu_flags"]


@needs_arm
@pytest.mark.skipif(mcu.qemu() is None, reason="no qemu-system-arm (apt-get install qemu-system-arm)")
@pytest.mark.parametrize("name", ["mlp-sparse-codes", "lenet5-codes"])
def test_the_emulated_cortex_m4_predicts_what_the_pc_build_does(name, compressed, digits, tmp_path):
    if name == "mlp-sparse-codes":
        model, data = compressed
        X = data.X_test[:60]
    else:
        images = digits.X_test[:40].reshape(-1, 1, 8, 8)
        padded = {f"X_{s}": np.pad(getattr(digits, f"X_{s}").reshape(-1, 1, 8, 8), ((0, 0), (0, 0), (2, 2), (2, 2)))
                  for s in ("train", "val", "test")}
        data = dataclasses.replace(digits, **padded)
        model = wattless.apply_steps(wattless.train("lenet5", data, epochs=10, seed=0), data,
                                     ["share.kmeans:clusters=8,finetune_epochs=0"])
        X = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    host = get_engine("native").load(model, workdir=tmp_path / "host").predict(X).argmax(1)
    assert len(set(host.tolist())) >= 5  # a model that tells classes apart, so agreeing means something
    exported = export_c(model, tmp_path / "c")
    (tmp_path / "qemu").mkdir()
    assert (mcu.run_in_qemu(exported.path, X, tmp_path / "qemu") == host).all()


def test_without_the_arm_toolchain_the_emulation_names_the_packages(compressed, tmp_path, monkeypatch):
    monkeypatch.setattr(mcu, "mcu_compiler", lambda: None)
    with pytest.raises(ConfigError, match="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"):
        mcu.run_in_qemu(tmp_path, compressed[1].X_test[:2], tmp_path)
