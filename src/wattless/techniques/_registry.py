"""The technique contract and its registry: a dotted name -> a :class:`Technique`.

A technique is a frozen pydantic config plus three things (:class:`Technique`): ``applies_to(model)`` says
whether it can run on a model (and why not), ``apply(model, cfg, ctx)`` changes the model and returns an
:class:`Applied`, and ``deploys`` says whether it ends a recipe by writing a deployment file (``quantize.int8``
writes ONNX) instead of changing the PyTorch model. Most techniques are plain functions registered with
:func:`register_technique`; every module of the technique packages is imported once by
:func:`discover_techniques`, so adding a technique is adding one module, nothing else.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from .._yaml import YAMLSyntaxError, parse_yaml
from ..data import Dataset
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..train import TrainConfig


class TechniqueConfig(BaseModel):
    """Base of every technique config: immutable, and unknown fields are errors.

    ``version`` is the config's schema version: a subclass that changes the meaning of its fields raises the
    default and may override :meth:`migrate`, so configs stored in older model files still load.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    defaults_before: ClassVar[dict[int, dict[str, Any]]] = {}
    """Per older ``version``, the defaults of the fields whose default has changed since: a config stored at that
    version and leaving such a field out gets its old default (:meth:`migrate`), so it keeps its meaning."""

    def recipe_fields(self) -> dict[str, Any]:
        """The fields as a recipe step writes them (``Recipe.to_dict``): everything but the version."""
        return self.model_dump(mode="json", exclude={"version"})

    @classmethod
    def current_version(cls) -> int:
        return int(cls.model_fields["version"].default)

    @classmethod
    def migrate(cls, fields: dict[str, Any], version: int) -> dict[str, Any]:
        """Fields of a config written at an older ``version``, rewritten for the current one (default: the fields it
        leaves out that have since changed their default take that version's, :attr:`defaults_before`)."""
        return {**cls.defaults_before.get(version, {}), **fields}


@dataclass
class Context:
    """What a technique may need besides the model: data for calibration and fine-tuning, a seed."""

    dataset: Dataset
    seed: int = 0
    quiet: bool = False
    batch_size: int | None = None
    """Fine-tuning batch size: the one the model was trained with (None: the training default)."""


@dataclass
class Applied:
    """What a technique returns: the changed module and, when it is of another architecture than the one the
    model file describes (a distillation student from the zoo), that architecture's spec."""

    module: nn.Module
    new_architecture: dict[str, Any] | None = None


Applicability = Callable[..., "str | None"]
"""``applies_to(model, cfg=None)``: None when the technique can run on ``model`` with ``cfg`` (None: its default
config), else the reason it cannot."""
CLAIMS = ("nonzero_params", "weight_bits", "bops", "params", "macs", "size_bytes")
"""What a technique may claim to reduce: non-zero weights, bits per stored weight, bit operations (activation
bits), parameters, multiply-accumulates, bytes of the written file. The contract tests check every claim."""


class Technique:
    """One registered technique. Subclass it for techniques that are more than a function (``quantize.int8``)."""

    name: str = ""
    config_type: type[TechniqueConfig] = TechniqueConfig
    summary: str = ""
    deploys: ClassVar[bool] = False
    """True for a technique that writes the deployed file (it must be a recipe's last step)."""
    output_suffix: ClassVar[str | None] = None
    """The file suffix a deploying technique writes (``.onnx``)."""
    claims: tuple[str, ...] = ()
    """Figures of :data:`CLAIMS` this technique reduces with its default config."""

    def applies_to(self, model: nn.Module, cfg: TechniqueConfig | None = None) -> str | None:
        """None when this technique can run on ``model`` with ``cfg`` (None: its default config), else why not."""
        return None

    def apply(self, model: nn.Module, cfg: TechniqueConfig, ctx: Context) -> Applied:
        raise NotImplementedError

    def deploy(self, model: Any, cfg: TechniqueConfig, ctx: Context, out: Path) -> Path:
        """Write ``model`` (a :class:`~wattless.io.WattlessModel`) to ``out`` as this technique deploys it."""
        raise NotImplementedError(f"{self.name} does not deploy")

    def check_applies(self, model: nn.Module, cfg: TechniqueConfig | None = None) -> None:
        """Raise the ConfigError a user sees when this technique cannot run on ``model`` with ``cfg``."""
        reason = self.applies_to(model, cfg)
        if reason is not None:
            raise ConfigError(f"{self.name} does not apply to this model: {reason}")


class FunctionTechnique(Technique):
    """A technique given as ``apply(model, cfg, ctx)`` returning the changed module or an :class:`Applied`."""

    def __init__(self, name: str, config_type: type[TechniqueConfig], function: Callable[..., Any],
                 applies_to: Applicability | None, claims: tuple[str, ...] = ()):
        unknown = sorted(set(claims) - set(CLAIMS))
        if unknown:
            raise ValueError(f"technique {name} claims {unknown}; claims are {CLAIMS}")
        self.name, self.config_type, self.function, self.claims = name, config_type, function, tuple(claims)
        self.summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        self._applies_to = applies_to

    def applies_to(self, model: nn.Module, cfg: TechniqueConfig | None = None) -> str | None:
        return None if self._applies_to is None else self._applies_to(model, cfg)

    def apply(self, model: nn.Module, cfg: TechniqueConfig, ctx: Context) -> Applied:
        result = self.function(model, cfg, ctx)
        return result if isinstance(result, Applied) else Applied(result)


def layers_of(*types: type[nn.Module], what: str) -> Applicability:
    """``applies_to`` for techniques that work on layers of ``types`` (``what`` names them in the reason)."""

    def applies_to(model: nn.Module, cfg: TechniqueConfig | None = None) -> str | None:
        return None if any(isinstance(m, types) for m in model.modules()) else f"it has no {what}"

    return applies_to


_REGISTRY: dict[str, Technique] = {}


def add_technique(technique: Technique) -> Technique:
    """Register a :class:`Technique` instance under its name."""
    if technique.name in _REGISTRY:
        warnings.warn(f"overwriting technique {technique.name!r} in the registry", stacklevel=2)
    _REGISTRY[technique.name] = technique
    return technique


def register_technique(name: str, config_type: type[TechniqueConfig], *, applies_to: Applicability | None = None,
                       claims: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Register ``apply(model, cfg, ctx)`` under ``name`` (e.g. ``prune.magnitude``) with its config type,
    ``applies_to(model)`` (None = runs on any model) and the figures it ``claims`` to reduce (:data:`CLAIMS`)."""

    def decorate(function: Callable) -> Callable:
        add_technique(FunctionTechnique(name, config_type, function, applies_to, claims))
        return function

    return decorate


_discovered = False


def discover_techniques() -> None:
    """Import every public module under ``wattless.techniques`` once, so each registers its techniques (and the
    stored forms its models need to load: packed weights, structural edits, attached quantizers)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(__package__)
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{__package__}."):
        if not any(part.startswith("_") for part in module.name.split(".")[2:]):
            importlib.import_module(module.name)


def list_techniques(pattern: str = "*") -> list[str]:
    """Registered technique names matching an fnmatch ``pattern``."""
    discover_techniques()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_technique(name: str) -> Technique:
    discover_techniques()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown technique {str(name)[:60]!r}; choose one of: {', '.join(list_techniques())}")
    return _REGISTRY[name]


def make_config(name: str, fields: dict[str, Any] | None = None) -> TechniqueConfig:
    """Validate ``fields`` for technique ``name``; a bad field is one error naming it and the valid ones.

    A stored ``version`` older than the config's is migrated; a newer one is refused (written by a newer wattless).
    """
    technique = get_technique(name)
    config_type = technique.config_type
    fields = dict(fields or {})
    version = fields.get("version", config_type.current_version())
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"invalid config for {name}: version {str(version)[:20]!r} is not a positive whole number")
    if version > config_type.current_version():
        raise ConfigError(f"{name} config version {version} was written by a newer wattless (this one reads up to "
                          f"{config_type.current_version()}); upgrade wattless")
    if version < config_type.current_version():
        fields = {**config_type.migrate(fields, version), "version": config_type.current_version()}
    for key, value in fields.items():  # pydantic reads true as 1: `bits: true` would be 1 bit
        field = config_type.model_fields.get(key)
        if field is not None and _holds_bool(value) and not _mentions_bool(field.annotation):
            raise ConfigError(f"invalid config for {name}: {key} takes numbers or names, not true/false")
    try:
        return config_type(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(f for f in config_type.model_fields if f != "version")
        raise ConfigError(f"invalid config for {name}: {problems} (fields: {valid})") from None


def _holds_bool(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_bool(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_bool(item) for item in value)
    return isinstance(value, bool)


def _mentions_bool(annotation: Any) -> bool:
    """Whether a field's type admits true/false anywhere (``bool``, ``Any``, a Literal of booleans)."""
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(option, bool) for option in get_args(annotation))
    return any(_mentions_bool(argument) for argument in get_args(annotation))


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
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"cannot read {item[:80]!r} in step {text[:80]!r}; write it as key=value")
        if key in fields:
            raise ConfigError(f"--step {text[:80]!r} gives {key[:40]!r} twice; keep one")
        try:
            fields[key] = parse_yaml(value, f"--step {name.strip()[:40]}: {key[:40]}")
        except YAMLSyntaxError:
            fields[key] = value
    return name.strip(), fields


def parse_step(text: str) -> tuple[str, TechniqueConfig]:
    """Parse and validate a CLI step ``name[:key=value,...]``."""
    name, fields = split_step(text)
    return name, make_config(name, fields)


def describe_step(name: str, cfg: TechniqueConfig) -> dict[str, Any]:
    """The JSON form of one applied step, as stored in model files and records."""
    return {"technique": name, "config": cfg.model_dump(mode="json")}


def finetune(model: nn.Module, ctx: Context, epochs: int, lr: float, **fit_options: Any) -> dict[str, Any] | None:
    """Fine-tune every trainable weight of ``model`` for ``epochs`` (a technique's ``finetune_epochs``) at ``lr``
    with the one training loop, seeded by the context, in batches of the size the model was trained with; nothing
    when ``epochs`` is 0. ``fit_options`` go to :func:`wattless.train.fit` (``on_step``, ``best_from_epoch``)."""
    from ..train import fit

    if not epochs:
        return None
    return fit(model, ctx.dataset, finetune_config(ctx, epochs, lr), **fit_options)


def finetune_config(ctx: Context, epochs: int, lr: float) -> TrainConfig:
    """The :class:`~wattless.train.TrainConfig` of fine-tuning: ``epochs`` at ``lr``, the context's seed, and the
    batch size the model was trained with."""
    from ..train import TrainConfig

    batch = {"batch_size": ctx.batch_size} if ctx.batch_size else {}
    return TrainConfig(epochs=epochs, lr=lr, seed=ctx.seed, **batch)
