"""Reading user YAML files safely (``yaml.safe_load``), with one clear error for a missing or broken file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed contents of the YAML file ``path`` (a ``what`` file: recipe, ladder, study)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file {str(path)!r} not found")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
