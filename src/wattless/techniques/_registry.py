"""The technique registry: a dotted name -> (validated config type, apply function).

A technique is a frozen pydantic config plus ``apply(model, cfg, ctx) -> model``. Adding one means
adding a module that calls :func:`register_technique`; the CLI, recipes and contract tests find it here.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from ..data import Dataset
from ..errors import ConfigError


class TechniqueConfig(BaseModel):
    """Base of every technique config: immutable, and unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1


@dataclass
class Context:
    """What a technique may need besides the model: data for calibration and fine-tuning, a seed."""

    dataset: Dataset
    seed: int = 0
    quiet: bool = False


Apply = Callable[[nn.Module, Any, Context], nn.Module]


@dataclass(frozen=True)
class Technique:
    name: str
    config_type: type[TechniqueConfig]
    apply: Apply
    summary: str


_REGISTRY: dict[str, Technique] = {}


def register_technique(name: str, config_type: type[TechniqueConfig]) -> Callable[[Apply], Apply]:
    """Register ``apply`` under ``name`` (e.g. ``prune.magnitude``) with its config type."""

    def decorate(apply: Apply) -> Apply:
        if name in _REGISTRY:
            warnings.warn(f"overwriting technique {name!r} in the registry", stacklevel=2)
        summary = (apply.__doc__ or "").strip().splitlines()[0] if apply.__doc__ else ""
        _REGISTRY[name] = Technique(name, config_type, apply, summary)
        return apply

    return decorate


def list_techniques(pattern: str = "*") -> list[str]:
    """Registered technique names matching an fnmatch ``pattern``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_technique(name: str) -> Technique:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown technique {name!r}; choose one of: {', '.join(list_techniques())}")
    return _REGISTRY[name]


def make_config(name: str, fields: dict[str, Any] | None = None) -> TechniqueConfig:
    """Validate ``fields`` for technique ``name``; a bad field is one error naming it and the valid ones."""
    technique = get_technique(name)
    try:
        return technique.config_type(**(fields or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(f for f in technique.config_type.model_fields if f != "version")
        raise ConfigError(f"invalid config for {name}: {problems} (fields: {valid})") from None


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside [] or {}, so ``skip=[1,3],bits=4`` gives two items."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:position])
            start = position + 1
    return [*items, text[start:]]


def split_step(text: str) -> tuple[str, dict[str, Any]]:
    """Split a CLI step ``name[:key=value,...]`` into its name and fields; values are read as YAML
    scalars (``0.9``, ``true``, ``global``)."""
    name, _, rest = text.partition(":")
    fields: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in _split_top_level(rest))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"cannot read {item!r} in step {text!r}; write it as key=value")
        try:
            fields[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            fields[key.strip()] = value
    return name.strip(), fields


def parse_step(text: str) -> tuple[str, TechniqueConfig]:
    """Parse and validate a CLI step ``name[:key=value,...]``."""
    name, fields = split_step(text)
    return name, make_config(name, fields)


def describe_step(name: str, cfg: TechniqueConfig) -> dict[str, Any]:
    """The JSON form of one applied step, as stored in model files and records."""
    return {"technique": name, "config": cfg.model_dump(mode="json")}
