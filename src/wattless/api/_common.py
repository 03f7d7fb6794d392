"""What every public function shares: finding the data set, checking output paths, reading option values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._yaml import YAMLSyntaxError, parse_yaml
from ..data import Dataset, load_dataset
from ..errors import ConfigError

MAX_BATCH = 65536
MAX_SEED = 2**32 - 1
"""Largest seed (numpy's legacy generator takes 0 to 2**32 - 1)."""
MAX_THREADS = 256
"""Most CPU threads an engine or a sweep worker is given."""
MAX_REPEATS = 100_000
"""Most timed runs per engine and batch."""
MAX_FINETUNE_EPOCHS = 1000
"""Most fine-tuning epochs a technique takes (``finetune_epochs`` of prune.*, quantize.qat)."""
MAX_TRIALS = 10_000
MAX_WORKERS = 4096
TASKS = ("classification", "regression")


def dataset_for(dataset: Dataset | str | None, meta: Mapping[str, Any] | None = None, *, data_dir: str | None = None,
                target: str | None = None, task: str | None = None) -> Dataset:
    """``dataset`` as given, loaded by name, or (None) the data set the model's metadata names."""
    if isinstance(dataset, Dataset):
        return dataset
    if dataset is None and meta:
        described = meta.get("dataset")
        dataset = described.get("name") if isinstance(described, Mapping) else None
        if isinstance(dataset, str) and dataset.startswith("csv:"):
            raise ConfigError(f"the model was trained on {dataset[:200]}; pass --dataset csv:PATH --target COLUMN")
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError("no data set given; pass --dataset NAME (see `wattless list datasets`)")
    if task is not None and task not in TASKS:
        raise ConfigError(f"--task {task!r} unknown; use classification or regression")
    return load_dataset(dataset, data_dir=data_dir, target=target, task=task)


def check_output(path: str | Path, force: bool, *inputs: str | Path) -> Path:
    """Refuse to overwrite an input, or an existing file without ``force``, or to write into a missing folder."""
    path = Path(path)
    for source in map(Path, inputs):
        if source.exists() and path.exists() and path.resolve() == source.resolve():
            raise ConfigError(f"output {str(path)!r} is the input file; choose another -o path")
    if path.exists() and not force:
        raise ConfigError(f"{str(path)!r} already exists; choose another -o path or pass --force")
    if not path.parent.exists():
        raise ConfigError(f"folder {str(path.parent)!r} does not exist; create it first")
    return path


def check_whole(value: Any, option: str, low: int, high: int) -> int:
    """``value`` when it is a whole number (not a bool) from ``low`` to ``high``, else one error naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{option} {str(value)[:30]} must be a whole number from {low} to {high}")
    return value


def check_seed(seed: int | None) -> int | None:
    """``seed`` (None: the model's), 0 to :data:`MAX_SEED`."""
    return None if seed is None else check_whole(seed, "--seed", 0, MAX_SEED)


def parse_batches(text: str | int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Batch sizes from ``"1,256"`` (or a sequence), each 1 to :data:`MAX_BATCH`; an empty sequence (Python only)
    measures without timing anything."""
    if isinstance(text, tuple | list) and not text:
        return ()
    if isinstance(text, str):
        try:
            batches = tuple(int(b) for b in text.split(","))  # "1,,2" and "1," are mistakes, not "1,2" and "1"
        except ValueError:
            batches = ()
    else:
        batches = tuple(text) if isinstance(text, tuple | list) else (text,)
    if not batches or not all(isinstance(b, int) and not isinstance(b, bool) for b in batches) or min(batches) < 1 \
            or max(batches) > MAX_BATCH:
        raise ConfigError(f"--batch {str(text)[:40]!r} must be whole numbers from 1 to {MAX_BATCH} separated by "
                          "commas, e.g. 1,256")
    return batches


def parse_engines(engines: str | tuple[str, ...] | list[str] | set[str]) -> list[str]:
    """Engine names from ``"torch,onnxruntime"`` (or a collection), validated against the engine registry."""
    from ..measurement.engines import list_engines

    names = [e.strip() for e in engines.split(",")] if isinstance(engines, str) else list(engines)
    chosen = {name for name in names if name}
    if not chosen or chosen - set(list_engines()):
        raise ConfigError(f"--engines {','.join(sorted(chosen))[:60]!r}: use a comma list of "
                          f"{', '.join(list_engines())}")
    return [name for name in list_engines() if name in chosen]


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """``--model-arg key=value`` items as a dict, values read as YAML (``hidden=[256,128]``)."""
    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--model-arg {item[:80]!r} must be key=value, e.g. hidden=[256,128]")
        if key in kwargs:
            raise ConfigError(f"--model-arg {key[:40]!r} is given twice; keep one")
        try:
            kwargs[key] = parse_yaml(value, f"--model-arg {key[:40]}")
        except YAMLSyntaxError:
            raise ConfigError(f"--model-arg {item[:80]!r}: cannot read the value {value[:80]!r}; write e.g. "
                              "hidden=[256,128]") from None
    return kwargs


def as_json(value: Any) -> str:
    """One line of JSON for a record or a result (paths and other objects as strings)."""
    return json.dumps(value, default=str)
