"""Any ``nn.Module`` from Python as a :class:`~wattless.io.WattlessModel`: what ``compress``, ``measure``,
``export``, ``inspect`` and ``search`` take.

The spec names the module's class by import path (``package.module:Class``) with the constructor arguments the user
gives (``init=``), so a ``.wlz`` file can rebuild it (loading runs that class: ``trust_code``, as for any user code).
A class that cannot be imported again (defined in ``__main__`` or inside a function) is named ``memory:...``: such a
model measures, compresses and exports to ONNX or C, and saving it as ``.wlz`` is one error saying why. Weights are
never pickled.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import Dataset, as_dataset
from .errors import ModelError
from .io import WattlessModel
from .models._adapter import LogitsOutput
from .models._registry import IN_MEMORY

TASKS = ("classification", "regression")


def wrap(module: nn.Module, example_input: Any = None, *, dataset: Dataset | str | None = None,
         task: str | None = None, input_shape: tuple[int, ...] | None = None, init: dict[str, Any] | None = None,
         seed: int = 0) -> WattlessModel:
    """``module`` (used as it is, not copied) as a model wattless can compress, measure and export.

    Args:
        example_input: one batch (tensor or array) the module takes; else ``input_shape`` (one sample, no batch
            dimension) or the data set's.
        dataset: what the model is for (its task, classes and splits go into the metadata).
        task: ``classification`` or ``regression`` (default: the data set's, else classification for more than one
            output).
        init: the constructor arguments of ``type(module)``, so a ``.wlz`` file can rebuild it.

    Raises:
        ModelError: the forward fails on the example input (its last line), the outputs do not match the data set,
            or ``init`` builds a different model.
    """
    if isinstance(module, WattlessModel):
        return module
    if not isinstance(module, nn.Module):
        raise ModelError(f"wrap takes a torch.nn.Module, not {type(module).__name__}")
    data = as_dataset(dataset) if dataset is not None else None
    example = _example(example_input, input_shape, data)
    if data is not None and tuple(example.shape[1:]) != data.input_shape:
        raise ModelError(f"the example input's samples have shape {list(example.shape[1:])} but the data set's have "
                         f"{list(data.input_shape)}")
    output = _forward(module, example)
    adapted = module
    if not isinstance(output, torch.Tensor):
        adapted = LogitsOutput(module)
        output = _forward(adapted, example)
    outputs = int(output.shape[-1]) if output.dim() >= 2 else 1
    if data is not None and data.num_outputs != outputs:
        raise ModelError(f"the module gives {outputs} outputs per sample but data set {data.name!r} has "
                         f"{data.num_outputs} {'classes' if data.task == 'classification' else 'targets'}")
    task = task or (data.task if data is not None else ("classification" if outputs > 1 else "regression"))
    if task not in TASKS:
        raise ModelError(f"task {str(task)[:40]!r} unknown; use classification or regression")
    name, unsaved = _class_path(module, init)
    spec = {"name": name, "kwargs": dict(init or {}), "input_shape": list(example.shape[1:]), "num_outputs": outputs}
    if unsaved:
        spec["unsaved"] = unsaved
    if adapted is not module:
        spec["output"] = "logits"
    described = data.describe() if data is not None else {
        "name": "unknown", "task": task, "input_shape": spec["input_shape"], "num_outputs": outputs,
        "classes": None, "sizes": {}, "preprocessing": {}}
    meta = {"model": spec, "task": task, "dataset": described, "seed": seed, "recipe": [], "wrapped": True}
    return WattlessModel(adapted, meta)


def _example(example_input: Any, input_shape: tuple[int, ...] | None, data: Dataset | None) -> torch.Tensor:
    if example_input is not None:
        if isinstance(example_input, np.ndarray):
            example_input = torch.from_numpy(example_input)
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
            raise ModelError("example_input must be one batch: a tensor or array of shape (batch, *sample_shape)")
        return example_input[:2].float() if example_input.is_floating_point() else example_input[:2]
    shape = input_shape or (data.input_shape if data is not None else None)
    if not shape:
        raise ModelError("wrap needs the input's shape: pass example_input=, input_shape= or dataset=")
    return torch.zeros(1, *shape)


def _forward(module: nn.Module, example: torch.Tensor) -> Any:
    """The module's output on ``example`` (eval mode, no gradients); a failure is one error with its last line."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(example)
    except Exception as exc:  # the user's forward may fail in any way
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
        raise ModelError(f"the module's forward fails on an input of shape {list(example.shape)}: "
                         f"{type(exc).__name__}: {last}") from None
    finally:
        module.train(was_training)


def _class_path(module: nn.Module, init: dict[str, Any] | None) -> tuple[str, str | None]:
    """``(package.module:Class, None)`` where that import finds this very class and ``init`` rebuilds the same
    tensors; else ``(memory:module.Class, why not)``. Building from ``init`` runs the user's own constructor, whose
    module is already imported here."""
    cls = type(module)
    memory = f"{IN_MEMORY}{cls.__module__}.{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return memory, f"its class is defined {'in __main__' if cls.__module__ == '__main__' else 'inside a function'}"
    try:
        found = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        found = None
    if found is not cls:
        return memory, f"its class cannot be imported again as {cls.__module__}:{cls.__qualname__}"
    try:
        rebuilt = cls(**(init or {}))
    except Exception as exc:  # the constructor needs arguments the user did not give
        if init is not None:
            raise ModelError(f"{cls.__qualname__}(**init) fails: {type(exc).__name__}: {str(exc)[:160]}") from None
        return memory, f"{cls.__qualname__}() needs constructor arguments: wrap it with init={{...}}"
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} != expected:
        if init is not None:
            raise ModelError(f"{cls.__qualname__}(**init) builds a model with other weights than this one; pass the "
                             "constructor arguments that built it")
        return memory, f"{cls.__qualname__}() builds other weights than this one: wrap it with init={{...}}"
    return f"{cls.__module__}:{cls.__qualname__}", None
