"""Recipes: an ordered list of technique steps, from YAML or Python, validated before any work starts.

Shipped recipes (``deep-compression``, ``prune-int8``, ``kd-int8``, ``kd-pruned-student-int8``) live in the
package's ``recipes/`` folder and are found by name (:meth:`Recipe.load`); the ladder of candidates tried by
``compress --max-drop`` is ``recipes/ladder.yaml``.

```yaml
steps:
  - prune.magnitude: {sparsity: 0.8, finetune_epochs: 2}
  - quantize.int8: {calibration: minmax}   # optional last step: int8 deployment through ONNX Runtime
                                           # ({mode: dynamic}: int8 weights, activations quantized at run time)
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ._yaml import read_yaml
from .errors import ConfigError
from .techniques import TechniqueConfig, make_config, split_step

INT8_STEP = "quantize.int8"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
OBJECTIVES = ("size", "latency", "energy")
INT8_MODES = ("static", "dynamic")
_NOT_RECIPES = {"ladder"}


@dataclass
class Recipe:
    """Validated steps plus whether the result is deployed as int8 ONNX (and how it is calibrated)."""

    steps: list[tuple[str, TechniqueConfig]] = field(default_factory=list)
    int8: bool = False
    calibration: str = "minmax"
    int8_mode: str = "static"
    name: str = ""
    description: str = ""

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ConfigError(f"{source}: a recipe is a mapping with a 'steps' list")
        unknown = set(data) - {"steps", "name", "description"}
        if unknown:
            raise ConfigError(f"{source}: unknown recipe keys {sorted(unknown)}; use steps, name, description")
        recipe = cls(name=str(data.get("name", "")), description=str(data.get("description", "")))
        for position, step in enumerate(data["steps"], start=1):
            if isinstance(step, str):
                step = {step: {}}
            if not isinstance(step, dict) or len(step) != 1:
                raise ConfigError(f"{source}: step {position} must be 'technique: {{field: value}}'")
            (name, fields), = step.items()
            fields = fields or {}
            if not isinstance(fields, dict):
                raise ConfigError(f"{source}: step {position} ({name}) needs a mapping of fields")
            if recipe.int8:
                raise ConfigError(f"{source}: {INT8_STEP} deploys to ONNX and must be the last step")
            if name == INT8_STEP:
                recipe.int8 = True
                recipe.int8_mode, recipe.calibration = _int8_fields(fields, source)
            else:
                try:
                    recipe.steps.append((name, make_config(name, fields)))
                except ConfigError as exc:
                    raise ConfigError(f"{source}: step {position}: {exc}") from None
        if not recipe.steps and not recipe.int8:
            raise ConfigError(f"{source}: the recipe has no steps")
        return recipe

    @classmethod
    def load(cls, name_or_path: str | Path) -> Recipe:
        """A shipped recipe by name (``deep-compression``) or a YAML file by path."""
        text = str(name_or_path)
        if text in shipped_recipes():
            return cls.from_dict(yaml.safe_load(_shipped_file(text).read_text()), source=f"recipe {text}")
        if Path(text).suffix in (".yaml", ".yml") or Path(text).exists():
            return cls.from_yaml(text)
        raise ConfigError(f"recipe {text!r} is neither a file nor a shipped recipe; shipped: "
                          f"{', '.join(shipped_recipes())}")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (``from_dict`` reads it back)."""
        steps: list[dict[str, Any]] = [{name: cfg.model_dump(mode="json", exclude={"version"})}
                                       for name, cfg in self.steps]
        if self.int8:
            steps.append({INT8_STEP: {"calibration": self.calibration} if self.int8_mode == "static"
                          else {"mode": "dynamic"}})
        return {"name": self.name, "description": self.description, "steps": steps}

    @property
    def step_names(self) -> list[str]:
        """Technique names in order, ``quantize.int8`` included when the recipe ends with it."""
        return [name for name, _ in self.steps] + ([INT8_STEP] if self.int8 else [])

    @classmethod
    def from_steps(cls, texts: list[str]) -> Recipe:
        """A recipe from CLI steps ``name[:key=value,...]`` (``quantize.int8`` may come last)."""
        return cls.from_dict({"steps": [dict([split_step(text)]) for text in texts]}, source="--step")

    @classmethod
    def from_yaml(cls, path: str | Path) -> Recipe:
        return cls.from_dict(read_yaml(path, "recipe"), source=str(path))


def _int8_fields(fields: dict[str, Any], source: str) -> tuple[str, str]:
    """``(mode, calibration)`` of a ``quantize.int8`` step: static QDQ calibrated on training data (default), or
    dynamic (weights int8 ahead of time, activations quantized per batch at run time; no calibration)."""
    unknown = set(fields) - {"calibration", "mode"}
    if unknown:
        raise ConfigError(f"{source}: {INT8_STEP} takes only 'mode' and 'calibration', not {sorted(unknown)}")
    mode = fields.get("mode", "static")
    if mode not in INT8_MODES:
        raise ConfigError(f"{source}: {INT8_STEP} mode {mode!r} unknown; use one of {', '.join(INT8_MODES)}")
    if mode == "dynamic" and "calibration" in fields:
        raise ConfigError(f"{source}: dynamic int8 needs no calibration; drop 'calibration' or use mode: static")
    method = fields.get("calibration", "minmax")
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"{source}: calibration {method!r} unknown; use one of {', '.join(CALIBRATION_METHODS)}")
    return mode, method


def _recipes_folder():
    return resources.files("wattless") / "recipes"


def _shipped_file(name: str):
    return _recipes_folder() / f"{name}.yaml"


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped with wattless."""
    return sorted(entry.name.removesuffix(".yaml") for entry in _recipes_folder().iterdir()
                  if entry.name.endswith(".yaml") and entry.name.removesuffix(".yaml") not in _NOT_RECIPES)


def load_ladder(objective: str, path: str | Path | None = None) -> list[Recipe]:
    """The candidate recipes for ``objective``, mild to aggressive: the shipped ladder or a YAML file with
    the same layout (``objective: [recipe name | {name, steps}, ...]``). Every candidate is validated."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} unknown; use one of {', '.join(OBJECTIVES)}")
    if path is None:
        source, data = "ladder", yaml.safe_load(_shipped_file("ladder").read_text())
    else:
        source, data = str(path), read_yaml(path, "ladder")
    if not isinstance(data, dict) or not isinstance(data.get(objective), list) or not data[objective]:
        raise ConfigError(f"{source}: needs a non-empty list of recipes under {objective!r}")
    ladder = []
    for position, entry in enumerate(data[objective], start=1):
        if isinstance(entry, str):
            ladder.append(Recipe.load(entry))
        elif isinstance(entry, dict):
            recipe = Recipe.from_dict(entry, source=f"{source} {objective} #{position}")
            recipe.name = recipe.name or f"candidate-{position}"
            ladder.append(recipe)
        else:
            raise ConfigError(f"{source}: {objective} #{position} must be a recipe name or {{name, steps}}")
    names = [recipe.name for recipe in ladder]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: {objective} names a recipe twice: {names}")
    return ladder
