"""The Dataset record every loader returns, and the registry of data sets by name."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from ._split import Task


@dataclass
class Dataset:
    """Preprocessed, seeded train/validation/test splits of one data set.

    Features are float32 arrays of shape ``(n, *input_shape)``, already preprocessed with
    statistics computed on the training split only. Targets are int64 class indices
    (classification) or float32 values of shape ``(n,)`` (regression).
    """

    name: str
    task: Task
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable description of what was applied to the raw features (kind, statistics)."""
    source: str = ""
    """Where the data came from (a path, or 'scikit-learn')."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return tuple(int(d) for d in self.X_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Number of classes (classification) or 1 (regression)."""
        return len(self.classes) if self.task == "classification" and self.classes else 1

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of ``'train'``, ``'val'`` or ``'test'``."""
        if which not in ("train", "val", "test"):
            raise DataError(f"unknown split {which!r}; use one of 'train', 'val', 'test'")
        return getattr(self, f"X_{which}"), getattr(self, f"y_{which}")

    @classmethod
    def from_arrays(cls, X: Any, y: Any, **options: Any) -> Dataset:
        """A data set from numpy arrays (or tensors) ``X`` ``(n, *input_shape)`` and ``y`` ``(n,)``: see
        :func:`wattless.data._arrays.from_arrays` for ``task``, ``test=(X_test, y_test)``, ``val_fraction``,
        ``standardize`` and ``classes``.

        Example:
            >>> data = Dataset.from_arrays(X, y, task="classification", test=(X_test, y_test))  # doctest: +SKIP
        """
        from ._arrays import from_arrays

        return from_arrays(cls, X, y, **options)

    @classmethod
    def from_torch(cls, data: Any, **options: Any) -> Dataset:
        """A data set from a ``torch.utils.data.Dataset`` or ``DataLoader`` of ``(x, y)`` pairs, materialised in
        chunks after a memory check (:func:`wattless.data._arrays.from_torch`)."""
        from ._arrays import from_torch

        return from_torch(cls, data, **options)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary stored in model files and result records."""
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "classes": self.classes,
            "sizes": {s: int(len(getattr(self, f"y_{s}"))) for s in ("train", "val", "test")},
            "preprocessing": self.preprocessing,
        }


Loader = Callable[..., Dataset]
_REGISTRY: dict[str, Loader] = {}
_PREFIXES: dict[str, Callable[..., Dataset]] = {}
"""``csv:`` and ``ts:`` -> ``loader(path, *, target, task, split_seed)`` for data sets named by a path."""


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``loader(*, data_dir, split_seed, **options) -> Dataset`` under ``name``."""

    def decorate(loader: Loader) -> Loader:
        _REGISTRY[name] = loader
        return loader

    return decorate


def register_prefix(prefix: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Register ``loader(path, *, target, task, split_seed) -> Dataset`` for names ``<prefix>PATH`` (``csv:``)."""

    def decorate(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _PREFIXES[prefix] = loader
        return loader

    return decorate


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered data set names matching an fnmatch ``pattern`` (``csv:PATH`` is always available too)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def as_dataset(dataset: Dataset | str, **options: Any) -> Dataset:
    """A :class:`Dataset` as given, or loaded by name (``options`` go to :func:`load_dataset`)."""
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset, **options)


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    split_seed: int = 0,
    target: str | None = None,
    task: Task | None = None,
) -> Dataset:
    """Load a registered data set, ``csv:PATH`` with ``target`` naming the label column, or ``ts:PATH`` (a UEA/UCR
    ``.ts`` pair: ``DIR/NAME`` for ``NAME_TRAIN.ts`` and ``NAME_TEST.ts``, or a folder holding one pair).

    ``split_seed`` fixes the train/validation/test split; it is independent of the training seed
    so that every model trained on a data set is evaluated on the same test rows.
    """
    for prefix, loader in _PREFIXES.items():
        if name.startswith(prefix):
            return loader(name[len(prefix):], target=target, task=task, split_seed=split_seed)
    if name not in _REGISTRY:
        choices = ", ".join(list_datasets()) + ", csv:PATH, ts:PATH, npz:PATH, folder:PATH"
        raise DataError(f"unknown data set {name!r}; choose one of: {choices}")
    if target is not None or task is not None:
        raise DataError(f"--target and --task apply to csv:PATH data sets only, not to {name!r}")
    return _REGISTRY[name](data_dir=data_dir, split_seed=split_seed)
