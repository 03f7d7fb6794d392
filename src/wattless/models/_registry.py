"""The model zoo registry: names -> factories, and building a model from its JSON spec.

A model spec is the JSON-serialisable recipe stored in every model file::

    {"name": "lenet300", "kwargs": {}, "input_shape": [1, 28, 28], "num_outputs": 10}

``name`` is a registered zoo name or ``package.module:factory`` (the user's own code).
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ._adapter import adapt_output
from ._inputs import zero_sample_forward

Factory = Callable[..., nn.Module]
_REGISTRY: dict[str, Factory] = {}
HF_PREFIX = "hf:"
"""Hugging Face architectures built from a config (:mod:`wattless.models.hf`, extra ``hf``)."""
IN_MEMORY = "memory:"
"""Prefix of the name of a module wrapped from memory whose class cannot be imported again (defined in ``__main__``
or inside a function): such a model can be measured, compressed and exported, but not rebuilt from a file."""


def register_model(name: str) -> Callable[[Factory], Factory]:
    """Register ``factory(input_shape, num_outputs, **kwargs) -> nn.Module`` under ``name``."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            warnings.warn(f"overwriting model {name!r} in the registry", stacklevel=2)
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered zoo names matching an fnmatch ``pattern``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def is_import_path(name: str) -> bool:
    """True for ``package.module:factory`` names, which run the user's own code."""
    return ":" in name and not name.startswith((IN_MEMORY, HF_PREFIX))


def _resolve_import_path(name: str) -> Factory:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail in any way while importing
        raise ModelError(
            f"cannot import module {module_name!r} for model {name!r} ({exc}); "
            "make sure it is on PYTHONPATH"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(f"{module_name!r} has no callable {attr!r}; give the model as package.module:factory")
    return factory


def _call_user_factory(factory: Factory, input_shape, num_outputs, kwargs) -> nn.Module:
    """Pass ``input_shape``/``num_outputs`` only if the user's factory accepts them."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in (("input_shape", input_shape), ("num_outputs", num_outputs))
             if (takes_any or k in params) and k not in kwargs}
    return factory(**extra, **kwargs)


def build_model(spec: dict[str, Any], *, trust_code: bool = False) -> nn.Module:
    """Build an untrained model from its spec.

    Args:
        spec: ``{"name", "kwargs", "input_shape", "num_outputs"}``, and ``"output": "logits"`` for a model whose
            forward returns more than a tensor (:mod:`wattless.models._adapter`).
        trust_code: allow ``package.module:factory`` names, which import and run that code.
            Model files can name such factories, so loading one never imports code unless asked.
    """
    name = spec.get("name")
    if not isinstance(name, str):
        raise ModelError(f"model spec has no valid name: {spec!r}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise ModelError(f"the options of model {name[:80]!r} must be a mapping of names to values, got "
                         f"{_short(kwargs)}")
    kwargs = dict(kwargs)
    input_shape = tuple(spec.get("input_shape") or ())
    num_outputs = int(spec.get("num_outputs") or 1)
    if name.startswith(IN_MEMORY):
        raise ModelError(not_rebuildable(name, spec.get("unsaved")))
    if name.startswith(HF_PREFIX):
        from .hf import build_hf

        call = lambda: build_hf(name, input_shape, num_outputs, kwargs)  # noqa: E731
    elif is_import_path(name):
        if not trust_code:
            raise ModelError(
                f"model {name!r} is the user's own code; pass --trust-code (Python: trust_code=True) "
                "to import it"
            )
        factory = _resolve_import_path(name)
        call = lambda: _call_user_factory(factory, input_shape, num_outputs, kwargs)  # noqa: E731
    elif name in _REGISTRY:
        factory = _REGISTRY[name]
        call = lambda: factory(input_shape, num_outputs, **kwargs)  # noqa: E731
    else:
        choices = ", ".join(list_models())
        raise ModelError(f"unknown model {name!r}; choose one of: {choices}, hf:NAME (Hugging Face), or "
                         "package.module:factory")
    try:
        model = call()
    except TypeError as exc:
        raise ModelError(f"cannot build model {name!r} with options {_short(kwargs)}: {_short(exc)}") from exc
    except (ValueError, RuntimeError, OverflowError) as exc:  # RuntimeError: torch refusing a size, e.g. negative
        raise ModelError(f"cannot build model {name!r} with options {_short(kwargs)} for input "
                         f"{_short(list(input_shape))}: {_short(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory for {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    output = spec.get("output")
    if output is None and is_import_path(name) and input_shape:
        output = _output_kind(model, input_shape)
    return adapt_output(model, output)


def _short(value: object, limit: int = 120) -> str:
    """``value`` as text on one line, cut to ``limit`` characters (file contents can hold anything)."""
    text = " ".join(str(value)[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _output_kind(model: nn.Module, input_shape: tuple[int, ...]) -> str | None:
    """``"logits"`` when the user's model returns more than a tensor (a dict, a tuple) on one zero sample, so it
    goes behind the output adapter; None otherwise (a forward that fails is reported by check_input_shape)."""
    output, error = zero_sample_forward(model, input_shape)
    return None if error is not None or isinstance(output, torch.Tensor) else "logits"


def not_rebuildable(name: str, why: str | None = None) -> str:
    """Why a model wrapped from memory cannot be rebuilt from a file, and what to do instead."""
    why = why or "its class cannot be imported again"
    return (f"model {name[len(IN_MEMORY):]!r} cannot be saved as .wlz: {why}, so no file could rebuild it; define "
            "its class in an importable module and wrap it with init={constructor arguments}, or export it instead: "
            "wattless.export(model, 'model.onnx') or format='c'")


def spec_for(name: str, data: Any, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture spec of zoo model ``name`` (or ``package.module:factory``) sized for ``data``.

    Regression zoo models get the training targets' mean and standard deviation so that they learn
    a standardised target but predict in the data's units.
    """
    kwargs = dict(kwargs or {})
    if data.task == "regression" and not is_import_path(name):
        kwargs.setdefault("target_mean", float(data.y_train.mean()))
        kwargs.setdefault("target_std", float(data.y_train.std() or 1.0))
    return {"name": name, "kwargs": kwargs, "input_shape": list(data.input_shape), "num_outputs": data.num_outputs}


def check_input_shape(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Run one zero sample through ``model``; a shape mismatch becomes a clear ModelError."""
    _, error = zero_sample_forward(model, input_shape)
    if isinstance(error, RuntimeError):
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f"the model does not accept inputs of shape {list(input_shape)}: {first_line}") from error
    if error is not None:
        raise error
