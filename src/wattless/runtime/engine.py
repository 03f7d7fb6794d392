"""The ``native`` engine: the model exported to C (:mod:`.export`), compiled for this machine and called through
ctypes. Latency is timed inside the library by a C loop on a monotonic clock (what a C application sees); the cost
of calling it from Python is reported beside it. Its footprint comes from the built library's ELF sections, and,
where ``arm-none-eabi-gcc`` is installed, from the same library compiled for a Cortex-M4F."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..measurement.engines import Engine, Runner, register_engine
from .build import HOST_FLAGS, compile_c, find_compiler
from .export import export_c
from .library import NativeRunner
from .mcu import mcu_compiler, mcu_footprint


class NativeEngine(Engine):
    name = "native"
    description = "the model exported to C and compiled for this machine (packed weights as stored), one thread"

    def unavailable(self) -> str | None:
        try:
            find_compiler()
        except ConfigError as exc:
            return str(exc)
        return None

    def load(self, model: Any, *, workdir: Path, data=None) -> Runner:
        from ..io import WattlessModel, load

        if isinstance(model, str | Path) and Path(model).suffix == ".onnx":
            raise ConfigError(f"{Path(model).name} is an ONNX file: the native engine builds from a .wlz model (its "
                              "packed weights); measure the .wlz")
        if not isinstance(model, WattlessModel):
            model = load(model, keep_parametrizations=True)
        Path(workdir).mkdir(parents=True, exist_ok=True)
        exported = export_c(model, Path(workdir) / "native-c", force=True, check=False)
        started = time.perf_counter()
        built = compile_c([exported.path / "model.c"], Path(workdir) / "libwattless-model.so", flags=HOST_FLAGS,
                          shared=True, defines=("WL_TIMING",))
        footprint = {"compiler": built.compiler, "flags": " ".join(built.flags),
                     "build_s": time.perf_counter() - started,
                     "text_bytes": built.sections["text"], "rodata_bytes": built.sections["rodata"],
                     "data_bytes": built.sections["data"], "bss_bytes": built.sections["bss"],
                     "arena_bytes": exported.arena_bytes,
                     "batch_arena_bytes": exported.batch_arena_bytes, "weights_bytes": exported.weights_bytes,
                     "layers": exported.layers}
        if mcu_compiler():  # the same library for a Cortex-M4F: its flash and RAM
            footprint.update(mcu_footprint(exported.path, exported.arena_bytes, Path(workdir)))
        packed = any(layer["form"] != "f32" or layer["sparse"] for layer in exported.layers)
        return NativeRunner(built.path, exported.input_shape, exported.output_size, exported.batch_arena_bytes,
                            footprint, "packed" if packed else "fp32")


register_engine(NativeEngine())
