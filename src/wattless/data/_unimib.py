"""UniMiB SHAR (Micucci et al., 2017): smartphone accelerometer windows of 30 subjects, from its ``.mat`` files.

The published ``data/`` folder holds ``acc_data.mat`` (``acc_data``: n x 453, the 151 x, then 151 y, then
151 z samples of a 3 s window at 50 Hz, in m/s^2), ``acc_labels.mat`` (``acc_labels``: n x 3 of class
1..17, subject 1..30, trial) and ``acc_names.mat`` (``acc_names``: a 2 x 17 cell array, descriptions in the
first row, class names in the second). ``adl_*`` (9 daily activities) and ``fall_*`` (8 kinds of fall)
have the same layout: ``unimib-shar`` is ``acc`` (all 17 classes), ``unimib-shar-adl`` and ``-fall`` the others.

Lookup: the lookup-order folder ``unimib-shar/``, itself or its ``data/`` or ``UniMiB-SHAR/data/`` (the
zip's layout). No checksum is published, so the files are checked for shape and label ranges instead.
Windows of one subject are strongly alike, so the split is by subject, seeded: 20% of the subjects
(6 of 30) are the test split, 10% (3) validation, the rest train. Samples are float32 ``(3, 151)``,
standardized per axis with the mean and std of the train split.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._dataset import Dataset, register_dataset
from ._locate import DATA_ENV, cache_dir, candidate_folders
from ._split import TEST_FRACTION, VAL_FRACTION

WINDOW = 151
AXES = ("x", "y", "z")
SUBSETS = ("acc", "adl", "fall")
HOME_URL = "http://www.sal.disco.unimib.it/technologies/unimib-shar/"


@register_dataset("unimib-shar")
def load_unimib_shar(*, data_dir: str | None = None, split_seed: int = 0, subset: str = "acc") -> Dataset:
    """UniMiB SHAR: 3-axis acceleration windows (3, 151) of 17 activities (9 daily, 8 falls), split by subject."""
    if subset not in SUBSETS:
        raise DataError(f"unknown UniMiB SHAR subset {subset!r}; use one of: {', '.join(SUBSETS)}")
    files = tuple(f"{subset}_{part}.mat" for part in ("data", "labels", "names"))
    folder = _find_folder(files, data_dir)
    data = _variable(folder / files[0], f"{subset}_data")
    labels = _variable(folder / files[1], f"{subset}_labels")
    classes, descriptions = _class_names(folder / files[2], f"{subset}_names")
    X, y, subjects = _check(folder, files, data, labels, len(classes))
    train, val, test, split = subject_split(subjects, split_seed=split_seed)
    absent = sorted(set(range(len(classes))) - set(y[train].tolist()))
    if absent:
        warnings.warn(f"UniMiB SHAR: no train window of {[classes[i] for i in absent]} with seed {split_seed}",
                      stacklevel=2)
    mean = X[train].mean(axis=(0, 2))
    std = X[train].std(axis=(0, 2))
    std = np.where(std < 1e-12, 1.0, std)

    def scale(rows: np.ndarray) -> np.ndarray:
        return ((X[rows] - mean[:, None]) / std[:, None]).astype(np.float32)

    return Dataset(
        name="unimib-shar" if subset == "acc" else f"unimib-shar-{subset}",
        task="classification",
        X_train=scale(train),
        y_train=y[train],
        X_val=scale(val),
        y_val=y[val],
        X_test=scale(test),
        y_test=y[test],
        classes=classes,
        preprocessing={
            "kind": "standardize",
            "axis": "channel",
            "channels": list(AXES),
            "units": "m/s^2",
            "mean": mean.tolist(),
            "std": std.tolist(),
            "class_descriptions": descriptions,
            "split": split,
        },
        source=str(folder),
    )


@register_dataset("unimib-shar-adl")
def load_unimib_shar_adl(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """UniMiB SHAR's 9 activities of daily living (``adl_*.mat``), split by subject."""
    return load_unimib_shar(data_dir=data_dir, split_seed=split_seed, subset="adl")


@register_dataset("unimib-shar-fall")
def load_unimib_shar_fall(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """UniMiB SHAR's 8 kinds of fall (``fall_*.mat``), split by subject."""
    return load_unimib_shar(data_dir=data_dir, split_seed=split_seed, subset="fall")


def subject_split(subjects: np.ndarray, *, split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """``(train, val, test)`` row indices with whole subjects in each part, and the subject lists."""
    ids = np.unique(subjects)
    if len(ids) < 3:
        raise DataError(f"UniMiB SHAR: {len(ids)} subjects are too few for a split by subject; need at least 3")
    order = np.random.default_rng(split_seed).permutation(ids)
    n_test = max(1, round(TEST_FRACTION * len(ids)))
    n_val = max(1, round(VAL_FRACTION * len(ids)))
    test_ids, val_ids = np.sort(order[:n_test]), np.sort(order[n_test : n_test + n_val])
    rows = np.arange(len(subjects))
    test = rows[np.isin(subjects, test_ids)]
    val = rows[np.isin(subjects, val_ids)]
    train = rows[~np.isin(subjects, np.concatenate([test_ids, val_ids]))]
    split = {"by": "subject", "seed": split_seed, "test_subjects": test_ids.tolist(), "val_subjects": val_ids.tolist()}
    return train, val, test, split


def _find_folder(files: tuple[str, ...], data_dir: str | os.PathLike[str] | None) -> Path:
    folders = candidate_folders("unimib-shar", data_dir)
    for folder in folders:
        for inner in (folder, folder / "data", folder / "UniMiB-SHAR" / "data"):
            if all((inner / file).is_file() for file in files):
                return inner
    raise DataError(
        f"data set 'unimib-shar' not found: no folder holds all of {', '.join(files)}; searched "
        f"{', '.join(str(f) for f in folders)} (and their data/ and UniMiB-SHAR/data/). Get UniMiB-SHAR.zip from "
        f"{HOME_URL} and unzip it in {cache_dir() / 'unimib-shar'}, set {DATA_ENV} to a folder containing "
        "unimib-shar/, or pass --data-dir DIR"
    )


def _variable(path: Path, name: str) -> Any:
    """Variable ``name`` of a MATLAB v5 ``.mat`` file; DataError naming the file if it cannot be read."""
    from scipy.io import loadmat, whosmat  # imported here: scipy is slow to import and only this loader needs it

    try:
        contents = loadmat(path, variable_names=[name])
    except NotImplementedError as error:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: a MATLAB v7.3 file ({error}); save it again with save(..., '-v7')") from error
    except Exception as error:  # a damaged .mat file fails in many ways (ValueError, OSError, TypeError, ...)
        reason = (str(error).splitlines() or [""])[0]
        what = f"{type(error).__name__}: {reason}"
        raise DataError(f"{path}: not a readable .mat file ({what}); fetch it again") from error
    if name not in contents:
        found = ", ".join(variable for variable, _, _ in whosmat(path)) or "none"
        raise DataError(f"{path}: no variable {name!r} (found: {found}); is it the UniMiB SHAR file?")
    return contents[name]


def _class_names(path: Path, name: str) -> tuple[list[str], list[str]]:
    """Class names and descriptions from the 2 x k cell array (a single row gives names only)."""
    cells = np.asarray(_variable(path, name), dtype=object)
    if cells.ndim == 2 and cells.shape[0] == 2:
        descriptions, names = ([_text(cell) for cell in row] for row in cells)
    else:
        names = [_text(cell) for cell in cells.ravel()]
        descriptions = []
    if not names or not all(names):
        raise DataError(f"{path}: {name!r} holds no usable class names (shape {cells.shape}); is it the UniMiB file?")
    return names, descriptions


def _text(cell: Any) -> str:
    """The string in a loadmat cell, however deeply it is wrapped in 1-element arrays."""
    while isinstance(cell, np.ndarray):
        if cell.size != 1:
            return "".join(map(str, cell.ravel())).strip() if cell.dtype.kind == "U" else ""
        cell = cell.ravel()[0]
    return str(cell).strip()


def _check(
    folder: Path, files: tuple[str, ...], data: Any, labels: Any, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 windows ``(n, 3, 151)``, 0-based int64 classes and subject ids, after checking the files agree."""
    data, labels = np.asarray(data), np.asarray(labels)
    if data.ndim != 2 or data.shape[1] != len(AXES) * WINDOW or data.dtype.kind not in "fiu":
        raise DataError(f"{folder / files[0]}: expected numbers of shape (n, 453), found {data.dtype} {data.shape}")
    if labels.ndim != 2 or labels.shape[1] < 2 or len(labels) != len(data) or labels.dtype.kind not in "fiu":
        raise DataError(
            f"{folder / files[1]}: expected {len(data)} rows of (class, subject, trial), found {labels.dtype} "
            f"{labels.shape}; the files do not belong together"
        )
    if not np.isfinite(data).all():
        raise DataError(f"{folder / files[0]}: holds NaN or infinite values; the file is damaged, fetch it again")
    if not np.all(labels[:, :2] == np.round(labels[:, :2])):
        raise DataError(f"{folder / files[1]}: class and subject ids must be whole numbers")
    y = labels[:, 0].astype(np.int64) - 1  # MATLAB's 1-based class ids
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(
            f"{folder / files[1]}: class id {int(y.min()) + 1 if y.min() < 0 else int(y.max()) + 1} is out of range "
            f"1..{n_classes} named in {files[2]}"
        )
    X = data.astype(np.float64).reshape(len(data), len(AXES), WINDOW)
    return X, y, labels[:, 1].astype(np.int64)
