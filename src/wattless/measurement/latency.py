"""Latency of one batch on CPU, in PyTorch eager and in ONNX Runtime: median and quartiles in ms.

Both engines are timed the same way: random float32 input from a fixed seed, ``warmup`` untimed calls,
then at least ``repeats`` timed calls (and at least ``min_time_s`` seconds of them), with the stated
number of threads. No speed is assumed: whatever the engine does with a compressed model is reported.
"""

import functools
import os
import tempfile
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..deploy.runtime import onnx_session  # noqa: F401  (re-exported: the session every timing uses)
from ..errors import ArtifactError, ConfigError


def summarize_times(samples_ms: Sequence[float]) -> dict[str, float]:
    """Median and quartiles of timing samples, in the samples' unit (ms): ``{"median", "p25", "p75"}``."""
    p25, median, p75 = np.percentile(np.asarray(samples_ms, dtype=np.float64), [25, 50, 75])
    return {"median": float(median), "p25": float(p25), "p75": float(p75)}


def time_runner(runner, *, batch: int, threads: int = 1, warmup: int = 10, repeats: int = 50,
                min_time_s: float = 0.0) -> dict:
    """Time one batch on a loaded engine (:class:`~wattless.measurement.engines.Runner`).

    Returns:
        ``{"engine", "batch", "threads", "median", "p25", "p75", "repeats", "precision"}``, times in ms per batch
        and ``repeats`` the number of timed calls.
    """
    _check_timing_options(batch, threads, warmup, repeats)
    threads = min(threads, runner.max_threads or threads)
    if hasattr(runner, "time_in_engine"):  # timed inside the engine (the native library's own loop)
        samples = runner.time_in_engine(batch, warmup, repeats)
        return {**_timing_record(runner.engine, batch, threads, samples), "precision": runner.precision,
                "timed_by": "the library's loop (CLOCK_MONOTONIC)",
                "python_call_ms": float(runner.python_overhead_ms(batch, min(repeats, 50)))}
    with runner.call(batch, threads) as run:
        samples = _time_calls(run, warmup, repeats, min_time_s)
    return {**_timing_record(runner.engine, batch, threads, samples), "precision": runner.precision}


def time_torch(model: nn.Module, input_shape: tuple[int, ...], *, batch: int, threads: int = 1,
               warmup: int = 10, repeats: int = 50, min_time_s: float = 0.0) -> dict:
    """Time ``model`` in PyTorch eager under ``torch.inference_mode()``, in eval mode, on one batch.

    Args:
        input_shape: shape of one sample, without the batch dimension.
        threads: intra-op threads (``torch.set_num_threads``), restored afterwards. The inter-op pool is
            left alone: eager inference does not use it, and torch lets a process set it only once.

    Returns:
        ``{"engine": "torch", "batch", "threads", "median", "p25", "p75", "repeats"}``, times in ms per
        batch and ``repeats`` the number of timed calls.
    """
    from .engines import TorchRunner

    was_training = model.training
    try:
        record = time_runner(TorchRunner(model, input_shape), batch=batch, threads=threads, warmup=warmup,
                             repeats=repeats, min_time_s=min_time_s)
    finally:
        model.train(was_training)
    record.pop("precision")
    return record


def time_onnx(path: str | os.PathLike, input_shape: tuple[int, ...], *, batch: int, threads: int = 1,
              warmup: int = 10, repeats: int = 50, min_time_s: float = 0.0) -> dict:
    """Time an ``.onnx`` model in ONNX Runtime (CPU, session from :func:`onnx_session`) on one batch.

    The batch is fed to the model's first input, whose name is read from the session.

    Returns:
        ``{"engine": "onnxruntime", "batch", "threads", "median", "p25", "p75", "repeats"}``, times in ms
        per batch and ``repeats`` the number of timed calls.

    Raises:
        ArtifactError: the file is missing or corrupt, or its first input does not take float32.
    """
    from .engines import OnnxRunner

    _check_timing_options(batch, threads, warmup, repeats)
    try:
        runner = OnnxRunner(path, tuple(input_shape))
    except ConfigError as error:
        raise ArtifactError(str(error)) from None
    try:
        record = time_runner(runner, batch=batch, threads=threads, warmup=warmup, repeats=repeats,
                             min_time_s=min_time_s)
    except ConfigError as error:
        raise ArtifactError(str(error)) from None
    record.pop("precision")
    return record


def _check_timing_options(batch: int, threads: int, warmup: int, repeats: int) -> None:
    for name, value, least in (("batch", batch, 1), ("threads", threads, 1), ("warmup", warmup, 0),
                               ("repeats", repeats, 1)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, got {value}")


def _time_calls(run: Callable[[], object], warmup: int, repeats: int, min_time_s: float) -> list[float]:
    """Wall time of each timed call in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    samples_ms: list[float] = []
    elapsed_ns = 0
    while len(samples_ms) < repeats or elapsed_ns < min_time_s * 1e9:
        start = time.perf_counter_ns()
        run()
        duration_ns = time.perf_counter_ns() - start
        elapsed_ns += duration_ns
        samples_ms.append(duration_ns / 1e6)
    return samples_ms


def _timing_record(engine: str, batch: int, threads: int, samples_ms: list[float]) -> dict:
    return {"engine": engine, "batch": batch, "threads": threads, **summarize_times(samples_ms),
            "repeats": len(samples_ms)}


def time_interleaved(timers: dict[Hashable, Callable[[], dict]], *, rounds: int = 5) -> dict[Hashable, dict]:
    """Time several variants fairly: every round runs each timer once, in turn, and a variant's figure is
    the median of its per-round medians (ms), so a burst of background load hits all variants alike.

    Args:
        timers: name -> a call returning a timing record (e.g. a ``functools.partial`` of :func:`time_torch`).

    Returns:
        name -> the last round's record with ``median`` replaced by the median over rounds and
        ``round_medians`` added.
    """
    if rounds < 1:
        raise ConfigError(f"rounds={rounds} must be at least 1")
    per_round: dict[str, list[dict]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            per_round[name].append(timer())
    return {name: {**records[-1], "median": float(np.median([r["median"] for r in records])),
                   "round_medians": [r["median"] for r in records]} for name, records in per_round.items()}


TIMING_ROUNDS = 5
"""Alternating rounds a comparison splits its timed runs into."""


def time_variants(runners: Mapping[str, Mapping[str, Any]], *, batches: Sequence[int], threads: int = 1,
                  repeats: int = 50, rounds: int = TIMING_ROUNDS) -> dict[str, list[dict]]:
    """Every variant on each of its engines at every batch, timed in the same alternating rounds
    (:func:`time_interleaved`; ``repeats`` runs each, split over the rounds), so that background load hits all of
    them alike and variants timed together can be compared.

    Args:
        runners: variant name -> engine name -> loaded :class:`~wattless.measurement.engines.Runner`.

    Returns:
        variant -> one latency row per engine and batch (:func:`time_runner`'s keys) with ``median``, ``p25`` and
        ``p75`` the median and quartiles of its per-round medians in ms (``p75 - p25``: the spread a difference
        must exceed to be more than noise), ``round_medians``, and ``repeats`` the timed calls in all.
    """
    rounds = min(rounds, repeats)
    per_round = max(repeats // rounds, 1)
    keys = [(variant, engine, batch) for variant, engines in runners.items() for engine in engines for batch in batches]
    timed = time_interleaved({key: functools.partial(time_runner, runners[key[0]][key[1]], batch=key[2],
                                                     threads=threads, repeats=per_round) for key in keys},
                             rounds=rounds)
    rows: dict[str, list[dict]] = {variant: [] for variant in runners}
    for key in keys:
        rows[key[0]].append({**timed[key], **summarize_times(timed[key]["round_medians"]),
                             "repeats": per_round * rounds})
    return rows


def time_models(models: Mapping[str, Any], data, *, engines: Collection[str] | Mapping[str, Collection[str]],
                batches: Sequence[int], threads: int = 1, repeats: int = 50, trust_code: bool = False,
                rounds: int = TIMING_ROUNDS) -> dict[str, list[dict]]:
    """The ``latency_ms`` of several models (a :class:`~wattless.io.WattlessModel`, or a ``.wlz`` / ``.onnx``
    path) timed together by :func:`time_variants`, each on the engines ``measure`` would use (an ``.onnx`` file in
    ONNX Runtime as stored), so a table or a choice compares figures taken under the same load.

    Args:
        engines: engine names for every model, or model name -> its engine names.
        data: the data set (the ``int8`` engine calibrates on it).
    """
    from .engines import load_runners

    if not batches:
        return {name: [] for name in models}
    with tempfile.TemporaryDirectory(prefix="wattless-timing-") as tmp:
        runners = {name: load_runners(model, engines[name] if isinstance(engines, Mapping) else engines,
                                      workdir=Path(tmp) / str(position), data=data, trust_code=trust_code)
                   for position, (name, model) in enumerate(models.items())}
        return time_variants(runners, batches=batches, threads=threads, repeats=repeats, rounds=rounds)
