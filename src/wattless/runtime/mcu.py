"""The exported library on a microcontroller: its footprint when compiled for a Cortex-M4 with an FPU (read from the
object's ELF sections) and, under QEMU's emulated Arm MPS2 AN386 board, its predictions (a firmware that reads
samples from the host through semihosting). Both need Debian's ``gcc-arm-none-eabi`` (and ``libnewlib-arm-none-eabi``
for the firmware's maths library); QEMU needs ``qemu-system-arm``."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .build import compile_c

ARM_COMPILER = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
BOARD = "mps2-an386"
MCU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os", "-std=c99",
             "-ffunction-sections", "-fdata-sections")
"""A Cortex-M4F (single-precision FPU), optimised for size; unused functions and data can be dropped at link time."""
QEMU_TIMEOUT_S = 600


def mcu_compiler() -> str | None:
    return shutil.which(ARM_COMPILER)


def qemu() -> str | None:
    return shutil.which(QEMU)


def mcu_footprint(folder: Path, arena_bytes: int, workdir: Path) -> dict[str, Any]:
    """Bytes of the library compiled for a Cortex-M4F: flash (code, constants, initialised data) and RAM (data,
    zeroed data, the arena and the stack, bounded by the sum of every function's frame: the code has no recursion).
    The maths functions it may call (expf, tanhf...) come from the C library and are not counted."""
    built = compile_c([Path(folder) / "model.c"], Path(workdir) / "model-m4.o", compiler=ARM_COMPILER,
                      flags=(*MCU_FLAGS, "-fstack-usage"), link=False)
    stack = sum(int(line.split("\t")[1]) for line in (Path(workdir) / "model-m4.su").read_text().splitlines()
                if line.count("\t") >= 2)
    sections = built.sections
    return {"mcu": "Cortex-M4F", "mcu_compiler": built.compiler, "mcu_flags": " ".join(built.flags),
            "mcu_flash_bytes": sections["text"] + sections["rodata"] + sections["data"],
            "mcu_ram_bytes": sections["data"] + sections["bss"] + arena_bytes + stack,
            "mcu_text_bytes": sections["text"], "mcu_rodata_bytes": sections["rodata"],
            "mcu_data_bytes": sections["data"], "mcu_bss_bytes": sections["bss"], "mcu_stack_bytes": stack}


def run_in_qemu(folder: Path, X: np.ndarray, workdir: Path) -> np.ndarray:
    """The predicted class of each row of ``X`` (the model's input, preprocessed) from the library built for a
    Cortex-M4F and run on QEMU's emulated mps2-an386 board.

    Raises:
        ConfigError: no Arm compiler or no QEMU (naming the package), or the firmware failed.
    """
    if mcu_compiler() is None or qemu() is None:
        raise ConfigError(f"the microcontroller check needs {ARM_COMPILER} and {QEMU}; install them: apt-get install "
                          "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    workdir = Path(workdir)
    files = resources.files("wattless.runtime") / "mcu"
    for name in ("firmware.c", "link.ld"):
        (workdir / name).write_text((files / name).read_text())
    firmware = compile_c([workdir / "firmware.c", Path(folder) / "model.c"], workdir / "firmware.elf",
                         compiler=ARM_COMPILER,
                         flags=(*MCU_FLAGS, "-nostartfiles", "-T", str(workdir / "link.ld"), f"-I{folder}",
                                "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs"))
    X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)
    X.tofile(workdir / "samples.bin")
    console = workdir / "console.txt"  # what the firmware writes through semihosting
    try:
        done = subprocess.run([qemu(), "-M", BOARD, "-nographic", "-monitor", "none", "-serial", "none",
                               "-chardev", f"file,id=semihosting,path={console}",
                               "-semihosting-config", "enable=on,target=native,chardev=semihosting",
                               "-kernel", str(firmware.path)], cwd=workdir, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=QEMU_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"the emulated microcontroller did not finish in {QEMU_TIMEOUT_S} s") from None
    output = console.read_text() if console.exists() else ""
    if done.returncode != 0 or "error" in output:
        message = (output + done.stderr).strip().splitlines() or ["no output"]
        raise ConfigError(f"the firmware failed under QEMU: {message[-1][:300]}")
    predictions = np.array([int(word) for word in output.split()], dtype=np.int64)
    if len(predictions) != len(X):
        raise ConfigError(f"the firmware predicted {len(predictions)} of {len(X)} samples under QEMU")
    return predictions
