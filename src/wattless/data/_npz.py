"""``npz:PATH`` data sets: arrays saved with ``numpy.savez``, read without pickles, split as
:meth:`~wattless.data.Dataset.from_arrays` splits; and the refusal to load a data set built in memory by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._arrays import IN_MEMORY
from ._dataset import Dataset, register_prefix
from ._split import Task


@register_prefix("npz:")
def load_npz(path: str | os.PathLike[str], *, target: str | None = None, task: Task | None = None,
             split_seed: int = 0) -> Dataset:
    """An ``.npz`` file with ``X_train``/``y_train`` (or ``X``/``y``), and optionally ``X_val``/``y_val`` and
    ``X_test``/``y_test``; read without pickles."""
    if target is not None:
        raise DataError("--target applies to csv:PATH data sets; an npz file names its arrays X_train, y_train...")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"npz file {str(path)!r} does not exist or is not a file; check the path")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({str(exc)[:120]}); write it with numpy.savez") from None
    train = next((keys for keys in (("X_train", "y_train"), ("X", "y")) if all(k in arrays for k in keys)), None)
    if train is None:
        raise DataError(f"{path}: needs arrays X_train and y_train (or X and y); it holds "
                        f"{', '.join(sorted(arrays)) or 'none'}")
    pairs = {}
    for split in ("val", "test"):
        keys = (f"X_{split}", f"y_{split}")
        if any(k in arrays for k in keys):
            if not all(k in arrays for k in keys):
                raise DataError(f"{path}: has one of {keys[0]} and {keys[1]} but not the other")
            pairs[split] = (arrays[keys[0]], arrays[keys[1]])
    return Dataset.from_arrays(arrays[train[0]], arrays[train[1]], task=task, name=f"npz:{path}", split_seed=split_seed,
                       source=str(path), **pairs)


@register_prefix(IN_MEMORY)
def _not_loadable(name: str, **_: Any) -> Dataset:
    raise DataError(f"data set {IN_MEMORY}{name} was built in memory and cannot be loaded by name; pass the Dataset "
                    "itself (Python), or save the arrays with numpy.savez and use npz:PATH")
