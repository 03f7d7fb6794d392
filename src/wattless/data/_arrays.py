"""Data from Python: numpy arrays (``Dataset.from_arrays``) and any ``torch.utils.data`` Dataset or DataLoader
(``Dataset.from_torch``, materialised in chunks after a memory check); ``npz:PATH`` (``_npz.py``) reads through here.

The arrays are taken as given (the user prepared them for their model), unless ``standardize=True``, which scales
every feature with the mean and std of the train split only, as the built-in sets do. Splits follow the same rules:
seeded, stratified for classification, a test split held out unless one is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._split import TEST_FRACTION, VAL_FRACTION, Task, holdout_indices

IN_MEMORY = "memory:"
"""Prefix of the name of a data set built in memory: it cannot be loaded again by name."""
MAX_INFERRED_CLASSES = 20
"""Whole-number targets with at most this many distinct values are taken as class labels."""
MEMORY_SHARE = 0.5
"""A torch data set is materialised only if it takes at most this share of the memory available."""


def from_arrays(cls: type, X: Any, y: Any, *, task: Task | None = None, name: str = "arrays",
                test: tuple[Any, Any] | None = None, val: tuple[Any, Any] | None = None,
                val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION, split_seed: int = 0,
                standardize: bool = False, classes: list[str] | None = None, source: str | None = None) -> Any:
    """A data set (of class ``cls``: :class:`~wattless.data.Dataset`) from arrays ``X`` (``(n, *input_shape)``)
    and ``y`` (``(n,)``): class indices 0..k-1 or real values. ``test``/``val`` are ``(X, y)`` pairs; a split not
    given is held out of ``X`` (seeded, stratified for classification).
    """
    if task not in (None, "classification", "regression"):
        raise DataError(f"unknown task {task!r}; use 'classification' or 'regression'")
    given = {"train": _pair(X, y, "X", "y")}
    for split, pair in (("val", val), ("test", test)):
        if pair is not None:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise DataError(f"{split}= must be a pair (X_{split}, y_{split})")
            given[split] = _pair(*pair, f"X_{split}", f"y_{split}")
    shape = given["train"][0].shape[1:]
    for split, (features, _) in given.items():
        if features.shape[1:] != shape:
            raise DataError(f"X_{split} samples have shape {list(features.shape[1:])} but X's have {list(shape)}")
    task = task or infer_task(given["train"][1])
    targets = np.concatenate([target for _, target in given.values()])
    if task == "classification":
        labels = _class_labels(targets)
        given = {split: (features, target.astype(np.int64)) for split, (features, target) in given.items()}
        classes = _class_names(classes, labels)
    else:
        given = {split: (features, target.astype(np.float32)) for split, (features, target) in given.items()}
        classes = None
    splits = _split(given, task, split_seed, val_fraction, test_fraction)
    preprocessing: dict[str, Any] = {"kind": "none", "note": "arrays as given"}
    if standardize:
        mean = splits["train"][0].mean(axis=0, dtype=np.float64)
        std = splits["train"][0].std(axis=0, dtype=np.float64)
        std = np.where(std < 1e-12, 1.0, std)
        splits = {s: (((x - mean) / std).astype(np.float32), t) for s, (x, t) in splits.items()}
        preprocessing = {"kind": "standardize", "scope": "feature", "mean": mean.ravel().tolist(),
                         "std": std.ravel().tolist()}
    preprocessing["given_splits"] = sorted(s for s in given if s != "train")
    return cls(name=name if ":" in name else IN_MEMORY + name, task=task,
                   X_train=splits["train"][0], y_train=splits["train"][1], X_val=splits["val"][0],
                   y_val=splits["val"][1], X_test=splits["test"][0], y_test=splits["test"][1], classes=classes,
                   preprocessing=preprocessing, source=source or "arrays in memory")


def from_torch(cls: type, data: Any, *, task: Task | None = None, name: str = "torch", batch_size: int = 1024,
               max_bytes: int | None = None, **options: Any) -> Any:
    """A data set (of class ``cls``) from a ``torch.utils.data.Dataset`` or ``DataLoader`` yielding ``(x, y)`` pairs,
    materialised in chunks of ``batch_size`` after checking it fits in ``max_bytes`` (default: half the memory
    available). ``options`` go to :func:`from_arrays` (``test=``, ``val_fraction=``, ``standardize=``...)."""
    import torch
    from torch.utils.data import DataLoader

    if not isinstance(data, DataLoader | torch.utils.data.Dataset):
        raise DataError(f"from_torch takes a torch Dataset or DataLoader, not {type(data).__name__}")
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)
    limit = max_bytes if max_bytes is not None else int(MEMORY_SHARE * _available_bytes())
    features, targets, used = [], [], 0
    try:
        total = len(loader.dataset)
    except TypeError:  # an iterable data set without a length: checked as it streams
        total = None
    for batch in loader:
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise DataError("each item of the torch data set must be an (x, y) pair")
        x, t = (np.asarray(part.detach().cpu().numpy() if torch.is_tensor(part) else part) for part in batch)
        used += x.nbytes + t.nbytes
        if total and features == []:  # the first chunk tells the size of the whole
            used_all = used * total / max(len(x), 1)
            if used_all > limit:
                raise DataError(f"the torch data set needs about {used_all / 2**30:.1f} GiB in memory, more than "
                                f"the {limit / 2**30:.1f} GiB allowed; pass a torch.utils.data.Subset or max_bytes=")
        if used > limit:
            raise DataError(f"the torch data set passed {limit / 2**30:.1f} GiB in memory; pass a Subset or "
                            "max_bytes=")
        features.append(x)
        targets.append(t)
    if not features:
        raise DataError("the torch data set is empty")
    return from_arrays(cls, np.concatenate(features), np.concatenate(targets), task=task, name=name,
                       source=options.pop("source", f"torch {type(loader.dataset).__name__}"), **options)


def infer_task(y: np.ndarray) -> Task:
    """Classification for integer, bool or text labels, or whole-number floats with few distinct values."""
    if y.dtype.kind in "iub" or y.dtype.kind in "USO":
        return "classification"
    few_whole = np.all(np.isfinite(y)) and np.all(y == np.round(y)) and len(np.unique(y)) <= MAX_INFERRED_CLASSES
    return "classification" if few_whole else "regression"


def _pair(X: Any, y: Any, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` as numpy arrays, checked: same length, at least one sample dimension, finite features."""
    X, y = _as_array(X, x_name), _as_array(y, y_name)
    if X.ndim < 2:
        raise DataError(f"{x_name} has shape {list(X.shape)}; it needs a batch dimension and sample dimensions, "
                        "e.g. (n, features)")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise DataError(f"{y_name} has shape {list(y.shape)}; give one label or value per sample, shape (n,)")
    if len(X) != len(y):
        raise DataError(f"{x_name} has {len(X)} samples but {y_name} has {len(y)}; they must match")
    if X.dtype.kind not in "fiub":
        raise DataError(f"{x_name} holds {X.dtype} values; features must be numbers")
    X = X.astype(np.float32, copy=False)
    bad = ~np.isfinite(X)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{x_name} holds {int(bad.sum())} NaN or infinite values (the first in sample {row}); "
                        "impute or drop them first")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise DataError(f"{y_name} holds NaN or infinite values; drop those samples first")
    return X, y


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name} is not an array ({str(exc)[:100]})") from None


def _class_labels(y: np.ndarray) -> np.ndarray:
    """The distinct labels, checked to be 0..k-1; otherwise one error offering the mapping."""
    if y.dtype.kind == "f" and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    labels = np.unique(y)
    if y.dtype.kind in "iub" and labels.min() >= 0 and np.array_equal(labels, np.arange(labels.max() + 1)):
        return labels
    shown = ", ".join(f"{label!s}->{index}" for index, label in enumerate(labels[:6]))
    raise DataError(f"class labels must be whole numbers 0..k-1, found {len(labels)} labels ({shown}"
                    f"{', ...' if len(labels) > 6 else ''}); map them first: classes, y = numpy.unique(y, "
                    "return_inverse=True), and pass classes=list(classes)")


def _class_names(classes: list[str] | None, labels: np.ndarray) -> list[str]:
    count = int(labels.max()) + 1
    if classes is None:
        return [str(i) for i in range(count)]
    if len(classes) < count:
        raise DataError(f"classes= names {len(classes)} classes but the labels go up to {count - 1}")
    return [str(c) for c in classes]


def _split(given: dict[str, tuple[np.ndarray, np.ndarray]], task: Task, split_seed: int, val_fraction: float,
           test_fraction: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test: the given ones, the others held out of train (shares of all the rows)."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be shares between 0 "
                        "and 1 summing to less than 1")
    X, y = given["train"]
    splits = dict(given)
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split in given:
            continue
        held = max(1, round(fraction * len(given["train"][1])))
        if len(y) - held < 1:
            raise DataError(f"{len(given['train'][1])} samples are too few to hold out a {split} split")
        kept, out = holdout_indices(y, held, task, split_seed=split_seed)
        splits[split] = (X[out], y[out])
        X, y = X[kept], y[kept]
    splits["train"] = (X, y)
    return splits


def _available_bytes() -> int:
    """Memory available to this process, from /proc/meminfo where there is one (else 4 GiB)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30
