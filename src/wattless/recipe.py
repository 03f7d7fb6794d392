"""Recipes: an ordered list of technique steps, from YAML or Python, validated before any work starts.

```yaml
steps:
  - prune.magnitude: {sparsity: 0.8, finetune_epochs: 2}
  - quantize.int8: {calibration: minmax}   # optional last step: int8 deployment through ONNX Runtime
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .techniques import TechniqueConfig, make_config, split_step

INT8_STEP = "quantize.int8"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass
class Recipe:
    """Validated steps plus whether the result is deployed as int8 ONNX (and how it is calibrated)."""

    steps: list[tuple[str, TechniqueConfig]] = field(default_factory=list)
    int8: bool = False
    calibration: str = "minmax"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ConfigError(f"{source}: a recipe is a mapping with a 'steps' list")
        unknown = set(data) - {"steps", "name", "description"}
        if unknown:
            raise ConfigError(f"{source}: unknown recipe keys {sorted(unknown)}; use steps, name, description")
        recipe = cls()
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
                recipe.int8, recipe.calibration = True, _calibration(fields, source)
            else:
                recipe.steps.append((name, make_config(name, fields)))
        return recipe

    @classmethod
    def from_steps(cls, texts: list[str]) -> Recipe:
        """A recipe from CLI steps ``name[:key=value,...]`` (``quantize.int8`` may come last)."""
        return cls.from_dict({"steps": [dict([split_step(text)]) for text in texts]}, source="--step")

    @classmethod
    def from_yaml(cls, path: str | Path) -> Recipe:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe file {str(path)!r} not found")
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
        return cls.from_dict(data, source=str(path))


def _calibration(fields: dict[str, Any], source: str) -> str:
    unknown = set(fields) - {"calibration"}
    if unknown:
        raise ConfigError(f"{source}: {INT8_STEP} takes only 'calibration', not {sorted(unknown)}")
    method = fields.get("calibration", "minmax")
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"{source}: calibration {method!r} unknown; use one of {', '.join(CALIBRATION_METHODS)}")
    return method
