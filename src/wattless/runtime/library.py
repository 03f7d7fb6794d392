"""A compiled model library called through ctypes: prediction, and timing by the library's own C loop."""

from __future__ import annotations

import contextlib
import ctypes
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..measurement.engines import Runner, random_input

_STATUS = {1: "the arena is missing, too small or misaligned", 2: "an input or output pointer is missing"}


class NativeRunner(Runner):
    """A compiled model: ``predict`` runs every sample through ``wl_predict_batch``; one thread."""

    engine = "native"
    max_threads = 1

    def __init__(self, library: Path, input_shape: tuple[int, ...], output_size: int, arena_bytes: int,
                 footprint: dict[str, Any] | None = None, precision: str = "fp32"):
        self.library = ctypes.CDLL(str(library))
        self.input_shape, self.output_size, self.precision = tuple(input_shape), output_size, precision
        self.input_size = int(np.prod(input_shape))
        self.arena = np.zeros(max(arena_bytes // 4, 1) + 16, dtype=np.float32)  # numpy aligns to 16 bytes or more
        self.arena_bytes = arena_bytes
        self.footprint = footprint or {}
        pointer, size = ctypes.c_void_p, ctypes.c_size_t
        self.library.wl_predict_batch.argtypes = [size, pointer, pointer, pointer, size]
        self.library.wl_predict_batch.restype = ctypes.c_int
        if hasattr(self.library, "wl_time"):  # built with WL_TIMING
            self.library.wl_time.argtypes = [size, size, pointer, pointer, pointer, size, pointer]
            self.library.wl_time.restype = ctypes.c_int

    def _check(self, status: int) -> None:
        if status:
            raise RuntimeError(f"the native model failed ({_STATUS.get(status, status)}); a wattless bug")

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), self.input_size)
        out = np.zeros((len(X), self.output_size), dtype=np.float32)
        self._check(self.library.wl_predict_batch(len(X), X.ctypes.data, out.ctypes.data, self.arena.ctypes.data,
                                                  self.arena_bytes))
        return out

    @contextlib.contextmanager
    def call(self, batch: int, threads: int) -> Iterator[Callable[[], object]]:
        inputs = random_input(batch, self.input_shape)
        out = np.zeros((batch, self.output_size), dtype=np.float32)
        args = (batch, inputs.ctypes.data, out.ctypes.data, self.arena.ctypes.data, self.arena_bytes)
        yield lambda: self.library.wl_predict_batch(*args)

    def time_in_engine(self, batch: int, warmup: int, repeats: int) -> list[float]:
        """Milliseconds of ``repeats`` calls of one batch, timed by the library itself after ``warmup`` calls."""
        inputs = random_input(batch, self.input_shape)
        out = np.zeros((batch, self.output_size), dtype=np.float32)
        ns = np.zeros(max(repeats, warmup, 1), dtype=np.float64)
        args = (batch, inputs.ctypes.data, out.ctypes.data, self.arena.ctypes.data, self.arena_bytes, ns.ctypes.data)
        self._check(self.library.wl_time(max(warmup, 1), *args))
        self._check(self.library.wl_time(repeats, *args))
        return list(ns[:repeats] / 1e6)

    def python_overhead_ms(self, batch: int, repeats: int = 200) -> float:
        """Median extra milliseconds of one call made from Python through ctypes over the same call timed in C."""
        with self.call(batch, 1) as run:
            samples = []
            for _ in range(repeats):
                start = time.perf_counter_ns()
                run()
                samples.append((time.perf_counter_ns() - start) / 1e6)
        return max(statistics.median(samples) - statistics.median(self.time_in_engine(batch, 10, repeats)), 0.0)
