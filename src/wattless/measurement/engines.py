"""The engine contract: where a model runs. Every figure that comes from running a model (accuracy, latency,
metered energy) goes through a registered :class:`Engine`.

An engine loads a model (an in-memory :class:`~wattless.io.WattlessModel`, or a file) into a :class:`Runner`,
which predicts on a split and gives a zero-argument call running one fixed batch at a thread count, for timing
(:func:`~wattless.measurement.latency.time_runner`) and metering (:mod:`.meters`).

Registered: ``torch`` (PyTorch eager, fp32), ``onnxruntime`` (the model exported to fp32 ONNX, or an ``.onnx``
file as stored, in ONNX Runtime) and ``int8`` (a static QDQ int8 export calibrated on training rows, in ONNX
Runtime). Later engines (a native runtime, a simulator) register the same way.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..models._inputs import sample_inputs, vocabulary


def random_input(batch: int, input_shape: tuple[int, ...], vocab: int | None = None) -> np.ndarray:
    """Standard-normal float32 input of shape (batch, *input_shape), the same on every call (token ids below
    ``vocab`` for a model with an embedding table)."""
    return sample_inputs(batch, input_shape, vocab)


class Runner:
    """A model loaded in one engine."""

    engine: str = ""
    precision: str = "fp32"
    input_shape: tuple[int, ...] = ()
    max_threads: int | None = None
    """The most threads the engine uses (the native runtime: 1); timings state the threads actually used."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs (logits or predictions) for ``X`` as float32, in batches."""
        raise NotImplementedError

    @contextlib.contextmanager
    def call(self, batch: int, threads: int) -> Iterator[Callable[[], object]]:
        """A call that runs one fixed random batch of ``batch`` samples on ``threads`` threads, valid inside the
        ``with`` block (which sets and restores whatever the engine needs)."""
        raise NotImplementedError
        yield


class TorchRunner(Runner):
    engine = "torch"

    def __init__(self, module, input_shape: tuple[int, ...]):
        self.module, self.input_shape = module.eval(), tuple(input_shape)

    def predict(self, X: np.ndarray) -> np.ndarray:
        from ..train import predict

        return predict(self.module, X)

    @contextlib.contextmanager
    def call(self, batch: int, threads: int) -> Iterator[Callable[[], object]]:
        import torch

        inputs = torch.from_numpy(random_input(batch, self.input_shape, vocabulary(self.module)))
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)  # intra-op; eager inference does not use the inter-op pool
        try:
            with torch.inference_mode():
                yield lambda: self.module(inputs)
        finally:
            torch.set_num_threads(previous)


class OnnxRunner(Runner):
    engine = "onnxruntime"

    def __init__(self, path: str | Path, input_shape: tuple[int, ...] | None = None):
        from ..deploy import OnnxModel

        self.path = Path(path)
        self.model = OnnxModel(self.path)
        self.precision = self.model.metadata.get("precision", "fp32")
        shape = input_shape or tuple(self.model.input_shape)
        if any(dim is None for dim in shape):
            raise ConfigError(f"{self.path.name} has a symbolic input dimension {list(shape)}; export it with a fixed "
                              "sample shape")
        self.input_shape = tuple(int(d) for d in shape)

    @property
    def metadata(self) -> dict[str, Any]:
        """The ``wattless`` record written at export (architecture, data set, recipe), checked; {} when it has none."""
        from ..artifact.metadata import onnx_metadata

        return onnx_metadata(self.model.metadata, str(self.path))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X)

    @contextlib.contextmanager
    def call(self, batch: int, threads: int) -> Iterator[Callable[[], object]]:
        from ..deploy.runtime import onnx_session

        session = onnx_session(self.path, threads)
        first = session.get_inputs()[0]
        if first.type != "tensor(float)":
            raise ConfigError(f"ONNX model {self.path} takes {first.type} as {first.name!r}; latency is timed on "
                              "float32 input, so export the model with a float input")
        feed = {first.name: random_input(batch, self.input_shape)}
        yield lambda: session.run(None, feed)


class Engine:
    """Where a model runs: ``load`` gives a :class:`Runner` for an in-memory model or a file."""

    name: str = ""
    description: str = ""

    def load(self, model: Any, *, workdir: Path, data=None) -> Runner:
        """A runner for ``model`` (a :class:`~wattless.io.WattlessModel` or a file path); ``workdir`` holds any
        file the engine writes (an export), ``data`` the calibration rows where an engine needs them."""
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why this engine cannot run on this machine (what to install), or None when it can."""
        return None


def _wattless_model(model: Any):
    from ..io import WattlessModel, load

    return model if isinstance(model, WattlessModel) else load(model, keep_parametrizations=True)


def _is_onnx(model: Any) -> bool:
    return isinstance(model, str | Path) and Path(model).suffix == ".onnx"


class TorchEngine(Engine):
    name, description = "torch", "PyTorch eager, fp32 (packed weights decoded to dense)"

    def load(self, model: Any, *, workdir: Path, data=None) -> Runner:
        from ..io import deployable_module

        if _is_onnx(model):
            raise ConfigError(f"{Path(model).name} is an ONNX file: it runs in ONNX Runtime, not in PyTorch; use "
                              "--engines onnxruntime")
        model = _wattless_model(model)
        return TorchRunner(deployable_module(model.module), model.input_shape)


class OnnxEngine(Engine):
    name, description = "onnxruntime", "ONNX Runtime, CPU: the model exported to fp32 ONNX, or an .onnx file as stored"

    def load(self, model: Any, *, workdir: Path, data=None) -> Runner:
        if _is_onnx(model):
            return OnnxRunner(model)
        from ..deploy import export_model

        model = _wattless_model(model)
        path = export_model(model, Path(workdir) / "fp32.onnx")
        return OnnxRunner(path, model.input_shape)


class Int8Engine(Engine):
    name, description = "int8", "ONNX Runtime, CPU: static QDQ int8 export calibrated on training rows"

    def load(self, model: Any, *, workdir: Path, data=None) -> Runner:
        if _is_onnx(model):
            return OnnxRunner(model)  # an ONNX file runs as stored; measure an int8 export by measuring it
        from ..deploy import export_model

        if data is None:
            raise ConfigError("the int8 engine needs calibration data; pass a data set")
        model = _wattless_model(model)
        path = export_model(model, Path(workdir) / "int8.onnx", int8=True, data=data)
        return OnnxRunner(path, model.input_shape)


def load_runners(model: Any, engines: Collection[str], *, workdir: Path, data=None,
                 trust_code: bool = False) -> dict[str, Runner]:
    """The runners ``measure`` times a model on: an ``.onnx`` file in ONNX Runtime as stored (at the input shape
    its metadata names), a :class:`~wattless.io.WattlessModel` or ``.wlz`` file on each of ``engines``."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if _is_onnx(model):
        runner = OnnxRunner(model)
        shape = tuple((runner.metadata.get("model") or {}).get("input_shape") or runner.input_shape)
        return {"onnxruntime": runner if shape == runner.input_shape else OnnxRunner(model, shape)}
    if isinstance(model, str | Path):  # a .wlz file: loaded once for every engine
        from ..io import load

        model = load(model, trust_code=trust_code, keep_parametrizations=True)
    return {name: get_engine(name).load(model, workdir=Path(workdir), data=data) for name in check_engines(engines)}


_ENGINES: dict[str, Engine] = {}
ENGINE_MODULES = ("wattless.runtime.engine",)
"""Modules that register further engines when imported (found by name, so this module imports none of them)."""
_discovered = False


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        for module in ENGINE_MODULES:
            importlib.import_module(module)


def register_engine(engine: Engine) -> Engine:
    """Make ``engine`` available by its name to measure, compress, sweeps and reports."""
    _ENGINES[engine.name] = engine
    return engine


for _engine in (TorchEngine(), OnnxEngine(), Int8Engine()):
    register_engine(_engine)


def list_engines(pattern: str = "*") -> list[str]:
    _discover()
    return [name for name in _ENGINES if fnmatch.fnmatch(name, pattern)]


def get_engine(name: str) -> Engine:
    _discover()
    if name not in _ENGINES:
        raise ConfigError(f"engine {str(name)[:40]!r} unknown; use one or more of {', '.join(_ENGINES)}")
    return _ENGINES[name]


def check_engines(engines: Collection[str]) -> list[str]:
    """The requested engine names, validated, in registry order."""
    _discover()
    chosen = set(engines)
    unknown = sorted(chosen - set(_ENGINES))
    if not chosen or unknown:
        raise ConfigError(f"engines {sorted(chosen)} unknown; use one or more of {', '.join(_ENGINES)}")
    return [name for name in _ENGINES if name in chosen]
