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

from ._yaml import parse_yaml, read_yaml
from .errors import ConfigError
from .techniques import TechniqueConfig, get_technique, make_config, split_step

INT8_STEP = "quantize.int8"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
OBJECTIVES = ("size", "latency", "energy")
INT8_MODES = ("static", "dynamic")
_NOT_RECIPES = {"ladder"}


@dataclass
class Recipe:
    """Validated steps in order; a deploying step (``quantize.int8``) may only come last, and decides the file."""

    steps: list[tuple[str, TechniqueConfig]] = field(default_factory=list)
    name: str = ""
    description: str = ""

    @property
    def deployment(self) -> tuple[str, TechniqueConfig] | None:
        """The last step when its technique writes the deployed file (``quantize.int8``), else None."""
        if self.steps and get_technique(self.steps[-1][0]).deploys:
            return self.steps[-1]
        return None

    @property
    def transforms(self) -> list[tuple[str, TechniqueConfig]]:
        """The steps that change the PyTorch model: every step but the deployment."""
        return self.steps[:-1] if self.deployment else list(self.steps)

    @property
    def output_suffix(self) -> str | None:
        """The suffix the deployment writes (``.onnx``), or None when the result may be ``.wlz`` or ``.onnx``."""
        return get_technique(self.deployment[0]).output_suffix if self.deployment else None

    @property
    def int8(self) -> bool:
        """Whether the recipe ends in int8 deployment through ONNX Runtime."""
        return self.deployment is not None and self.deployment[0] == INT8_STEP

    @property
    def int8_mode(self) -> str:
        return self.deployment[1].mode if self.int8 else "static"

    @property
    def calibration(self) -> str:
        return self.deployment[1].calibration if self.int8 else "minmax"

    def with_int8(self, mode: str = "static", calibration: str = "minmax") -> Recipe:
        """This recipe ending in int8 deployment (unchanged when it already deploys)."""
        if self.deployment:
            return self
        fields = {"mode": mode} if mode == "dynamic" else {"mode": mode, "calibration": calibration}
        return Recipe([*self.steps, (INT8_STEP, make_config(INT8_STEP, fields))], self.name, self.description)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ConfigError(f"{source}: a recipe is a mapping with a 'steps' list")
        unknown = set(data) - {"steps", "name", "description"}
        if unknown:
            raise ConfigError(f"{source}: unknown recipe keys {sorted(unknown)}; use steps, name, description")
        for key in ("name", "description"):
            if isinstance(data.get(key), list | dict):
                raise ConfigError(f"{source}: the recipe's {key} must be text, not a {type(data[key]).__name__}")
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
            if recipe.deployment:
                raise ConfigError(f"{source}: {recipe.deployment[0]} deploys to a file and must be the last step")
            try:
                recipe.steps.append((name, make_config(name, fields)))
            except ConfigError as exc:
                raise ConfigError(f"{source}: step {position}: {exc}") from None
        if not recipe.steps:
            raise ConfigError(f"{source}: the recipe has no steps")
        return recipe

    @classmethod
    def load(cls, name_or_path: str | Path) -> Recipe:
        """A shipped recipe by name (``deep-compression``) or a YAML file by path."""
        text = str(name_or_path)
        if text in shipped_recipes():
            return cls.from_dict(parse_yaml(_shipped_file(text).read_text(), f"recipe {text}"), source=f"recipe {text}")
        if Path(text).suffix in (".yaml", ".yml") or Path(text).exists():
            return cls.from_yaml(text)
        raise ConfigError(f"recipe {text[:200]!r} is neither a file nor a shipped recipe; shipped: "
                          f"{', '.join(shipped_recipes())}")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (``from_dict`` reads it back)."""
        return {"name": self.name, "description": self.description,
                "steps": [{name: cfg.recipe_fields()} for name, cfg in self.steps]}

    @property
    def step_names(self) -> list[str]:
        """Technique names in order, the deployment (``quantize.int8``) included."""
        return [name for name, _ in self.steps]

    @classmethod
    def from_steps(cls, texts: list[str]) -> Recipe:
        """A recipe from CLI steps ``name[:key=value,...]`` (``quantize.int8`` may come last)."""
        return cls.from_dict({"steps": [dict([split_step(text)]) for text in texts]}, source="--step")

    @classmethod
    def from_yaml(cls, path: str | Path) -> Recipe:
        return cls.from_dict(read_yaml(path, "recipe"), source=str(path))


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
        source, data = "ladder", parse_yaml(_shipped_file("ladder").read_text(), "ladder")
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
