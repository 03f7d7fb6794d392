"""Multivariate, equal-length time-series classification from UEA/UCR ``.ts`` files.

``basic-motions`` is found by the lookup order as a folder ``basic-motions/`` holding
``BasicMotions_TRAIN.ts`` and ``BasicMotions_TEST.ts`` (sha256-checked). Any other data set of the
archive loads as ``ts:PREFIX``, where ``PREFIX_TRAIN.ts`` and ``PREFIX_TEST.ts`` exist
(``ts:data/ERing/ERing``), or ``ts:DIR`` for a folder holding exactly one ``*_TRAIN.ts`` and its
``*_TEST.ts`` (``ts:data/ERing``).

Supported: ``@timeStamps false``, ``@equalLength true``, ``@classLabel true ...``; a value ``?`` or
``NaN`` is refused (``@missing true`` alone is fine), and so is a value too large to standardize. Anything else is
a DataError naming the file and line.
Samples are float32 ``(channels, length)`` standardized per channel with the mean and std of the train
split. Class labels map to indices in sorted order (numeric order when all are numbers). The test file
is the test split; validation is a seeded, stratified part of the train file: 10% of it, but at least
``MIN_VAL_PER_CLASS`` series per class (8 of BasicMotions' 40), and at most half of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._dataset import Dataset, register_dataset, register_prefix
from ._locate import DATA_ENV, cache_dir, candidate_folders, verify_sha256
from ._split import VAL_FRACTION, holdout_indices

MIN_VAL_PER_CLASS = 2
"""Validation series per class at least, so that a tiny train file still gives a usable validation split."""
UEA_URL = "https://www.timeseriesclassification.com/"
BASIC_MOTIONS = ("BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts")
SHA256 = {
    "basic-motions": {
        "BasicMotions_TRAIN.ts": "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6",
        "BasicMotions_TEST.ts": "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc",
    }
}
_UNSUPPORTED = {
    ("timestamps", True): "time stamps (@timeStamps true) are not supported; use a file with @timeStamps false",
    ("equallength", False): "series of unequal length (@equalLength false) are not supported; resample them first",
    ("classlabel", False): "files without class labels (@classLabel false) are not supported; a classifier needs them",
}


@dataclass
class TsFile:
    """The series of one ``.ts`` file: ``X`` float64 ``(n, channels, length)`` and one label per series."""

    problem: str
    X: np.ndarray
    labels: list[str]
    class_labels: list[str]
    """The labels declared by ``@classLabel true``, in file order."""
    lines: list[int]
    """The line number of each series in the file, for error messages."""


def read_ts(path: Path) -> TsFile:
    """Parse a UEA/UCR ``.ts`` file; DataError naming the file and line for anything unsupported or corrupt."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error})") from error
    header: dict[str, object] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if "data" not in header:
            if not line.startswith("@"):
                raise DataError(f"{where}: expected a @header line before @data, found {line[:40]!r}")
            _read_header(line, header, where)
        else:
            values, label = _read_series(line, header, where)
            if series and values.shape != series[0].shape:
                raise DataError(
                    f"{where}: series of (channels, length) {values.shape} after {series[0].shape}; "
                    "only equal lengths and a fixed number of channels are supported"
                )
            series.append(values)
            labels.append(label)
            lines.append(number)
    if "data" not in header:
        raise DataError(f"{path}: no @data line; is it a .ts file?")
    if not series:
        raise DataError(f"{path}: no series after @data; the file is empty or truncated")
    X = np.stack(series)
    _check_declared_shape(path, header, X.shape)
    return TsFile(str(header.get("problemname", path.stem)), X, labels, list(header["classlabel"]),  # type: ignore[arg-type]
                  lines)


def _read_header(line: str, header: dict[str, object], where: str) -> None:
    if not line[1:].strip():
        raise DataError(f"{where}: a lone '@' is not a header; write @TAG VALUE (e.g. @problemName NAME)")
    written, *rest_ = line[1:].split(maxsplit=1)
    tag, rest = written.lower(), (rest_[0] if rest_ else "").strip()
    if tag == "data":
        if "classlabel" not in header:
            raise DataError(f"{where}: @data comes before any @classLabel line; the header is incomplete")
        header["data"] = True
    elif tag == "problemname":
        header[tag] = rest.strip("'\"")
    elif tag in ("timestamps", "missing", "univariate", "equallength", "classlabel"):
        flag, *labels = rest.split() or [""]
        value = _boolean(flag, written, where)
        if (tag, value) in _UNSUPPORTED:
            raise DataError(f"{where}: {_UNSUPPORTED[(tag, value)]}")
        if tag == "classlabel" and not labels:
            raise DataError(f"{where}: @classLabel true lists no labels")
        header[tag] = labels if tag == "classlabel" else value
    elif tag in ("dimension", "dimensions", "serieslength"):
        if not rest.isdigit() or int(rest) == 0:
            raise DataError(f"{where}: @{written} needs a positive whole number, found {rest!r}")
        header["dimensions" if tag.startswith("dimension") else tag] = int(rest)
    elif tag == "targetlabel":
        raise DataError(f"{where}: regression files (@targetLabel) are not supported; only classification")
    else:
        raise DataError(f"{where}: unknown header @{written}; is it a UEA/UCR .ts file?")


def _boolean(value: str, tag: str, where: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise DataError(f"{where}: @{tag} must be true or false, found {value!r}")
    return value.lower() == "true"


def _read_series(line: str, header: dict[str, object], where: str) -> tuple[np.ndarray, str]:
    """One ``dim1:dim2:...:label`` data line as float64 ``(channels, length)`` and its label."""
    *dimensions, label = line.split(":")
    label = label.strip()
    if not dimensions:
        raise DataError(f"{where}: expected 'values:...:label', found no ':' in the line")
    if not label:
        raise DataError(f"{where}: the series has no class label after its last ':'; add one of the declared labels")
    if label not in header["classlabel"]:  # type: ignore[operator]
        declared = " ".join(header["classlabel"])  # type: ignore[arg-type]
        raise DataError(f"{where}: class label {label!r} is not among the declared ones ({declared})")
    rows = []
    for dimension in dimensions:
        tokens = dimension.split(",")
        try:
            row = np.array(tokens, dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            bad = bad.strip()
            what = "missing values ('?') are not supported" if bad == "?" else f"{bad!r} is not a number"
            raise DataError(f"{where}: {what}; fill or drop that series") from None
        if not np.isfinite(row).all():
            raise DataError(f"{where}: NaN or infinite values are not supported; fill or drop that series")
        rows.append(row)
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise DataError(f"{where}: channels have different lengths {sorted(lengths)}; only equal lengths are supported")
    return np.stack(rows), label


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_declared_shape(path: Path, header: dict[str, object], shape: tuple[int, ...]) -> None:
    _, channels, length = shape
    declared = header.get("dimensions", 1 if header.get("univariate") else None)
    if declared is not None and declared != channels:
        raise DataError(f"{path}: the header declares {declared} dimensions but the series have {channels}")
    if header.get("serieslength", length) != length:
        raise DataError(f"{path}: @seriesLength {header['serieslength']} but the series have {length} values")


@register_dataset("basic-motions")
def load_basic_motions(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """BasicMotions (UEA): 6-channel smart-watch motion (3D accelerometer + gyroscope), 100 steps, 4 activities."""
    folder = _find_files("basic-motions", BASIC_MOTIONS, data_dir, "BasicMotions.zip")
    for file, expected in SHA256["basic-motions"].items():
        verify_sha256(folder / file, expected)
    return load_ts_pair(
        folder / BASIC_MOTIONS[0], folder / BASIC_MOTIONS[1], name="basic-motions", split_seed=split_seed
    )


@register_prefix("ts:")
def load_ts_named(spec: str, *, target: str | None = None, task: str | None = None, split_seed: int = 0) -> Dataset:
    """``ts:PATH`` from :func:`~wattless.data.load_dataset` (a ``.ts`` pair has its own labels and task)."""
    if target is not None or task is not None:
        raise DataError(f"--target and --task apply to csv:PATH data sets only, not to ts:{spec[:200]}")
    return load_ts(spec, split_seed=split_seed)


def load_ts(spec: str, *, split_seed: int = 0) -> Dataset:
    """The ``ts:`` data set named by ``spec`` (a ``PREFIX`` of ``PREFIX_TRAIN.ts`` or a folder, see above)."""
    train, test = resolve_ts(spec)
    return load_ts_pair(train, test, name=f"ts:{spec}", split_seed=split_seed)


def resolve_ts(spec: str) -> tuple[Path, Path]:
    """``(train, test)`` paths of ``ts:PREFIX`` or ``ts:DIR``."""
    prefix = Path(spec)
    if prefix.is_dir():
        trains = sorted(prefix.glob("*_TRAIN.ts"))
        if len(trains) != 1:
            names = ", ".join(p.name for p in trains)
            found = f"{len(trains)} *_TRAIN.ts files ({names})" if trains else "no *_TRAIN.ts file"
            raise DataError(f"ts:{spec}: the folder holds {found}, not exactly one; use ts:DIR/NAME")
        prefix = trains[0].with_name(trains[0].name.removesuffix("_TRAIN.ts"))
    train, test = (prefix.with_name(f"{prefix.name}_{part}.ts") for part in ("TRAIN", "TEST"))
    missing = [str(p) for p in (train, test) if not p.is_file()]
    if missing:
        raise DataError(f"ts:{spec}: {', '.join(missing)} not found; use ts:DIR/NAME for NAME_TRAIN.ts, NAME_TEST.ts")
    return train, test


def load_ts_pair(train_path: Path, test_path: Path, *, name: str, split_seed: int) -> Dataset:
    """Read, check and encode a train/test pair, hold out validation, standardize per channel."""
    train_file, test_file = read_ts(train_path), read_ts(test_path)
    if train_file.X.shape[1:] != test_file.X.shape[1:]:
        raise DataError(
            f"{test_path}: series are (channels, length) {test_file.X.shape[1:]} but in {train_path.name} "
            f"{train_file.X.shape[1:]}; the files come from different data sets"
        )
    if set(train_file.class_labels) != set(test_file.class_labels):
        raise DataError(f"{test_path}: declares classes {test_file.class_labels} but {train_path.name} "
                        f"declares {train_file.class_labels}; the files come from different data sets")
    classes = sort_labels(train_file.class_labels)
    index = {label: i for i, label in enumerate(classes)}
    y_all = np.array([index[label] for label in train_file.labels], dtype=np.int64)
    y_test = np.array([index[label] for label in test_file.labels], dtype=np.int64)
    if len(y_all) < 2:
        raise DataError(f"{train_path}: holds {len(y_all)} series; train and validation need at least 2")
    n_val = validation_size(len(y_all), len(np.unique(y_all)))
    train, val = holdout_indices(y_all, n_val, "classification", split_seed=split_seed)
    with np.errstate(all="ignore"):  # overflow is detected and named, not printed as a warning
        mean = train_file.X[train].mean(axis=(0, 2))
        std = train_file.X[train].std(axis=(0, 2))
    std = np.where(std < 1e-12, 1.0, std)  # a constant channel keeps scale 1
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        _refuse_largest(train_path, train_file, train, "is too large to standardize")

    def scale(X: np.ndarray, file: TsFile, path: Path, rows: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            scaled = ((X - mean[:, None]) / std[:, None]).astype(np.float32)
        if not np.isfinite(scaled).all():
            bad = rows[~np.isfinite(scaled).all(axis=(1, 2))]
            _refuse_largest(path, file, bad, "is too far from the train series' values to standardize in float32")
        return scaled

    return Dataset(
        name=name,
        task="classification",
        X_train=scale(train_file.X[train], train_file, train_path, train),
        y_train=y_all[train],
        X_val=scale(train_file.X[val], train_file, train_path, val),
        y_val=y_all[val],
        X_test=scale(test_file.X, test_file, test_path, np.arange(len(test_file.X))),
        y_test=y_test,
        classes=classes,
        preprocessing={
            "kind": "standardize",
            "axis": "channel",
            "mean": mean.tolist(),
            "std": std.tolist(),
            "problem": train_file.problem,
            "validation": f"stratified {n_val} of the {len(y_all)} train-file series, seed {split_seed}",
        },
        source=str(train_path.parent.resolve()),
    )


def _refuse_largest(path: Path, file: TsFile, rows: np.ndarray, problem: str) -> None:
    """DataError naming the line of the largest-magnitude value among the series ``rows`` of ``file``."""
    magnitudes = np.abs(file.X[rows]).max(axis=(1, 2))
    series = rows[int(np.argmax(magnitudes))]
    channel = int(np.abs(file.X[series]).max(axis=1).argmax()) + 1
    value = file.X[series].flat[np.abs(file.X[series]).argmax()]
    raise DataError(f"{path}:{file.lines[series]}: value {value:.3g} of channel {channel} {problem}; rescale that "
                    "channel (e.g. other units) or drop the series")


def sort_labels(labels: list[str]) -> list[str]:
    """Labels in sorted order: numerically when every one is a number ("2" before "10"), else as text."""
    if all(_is_number(label) for label in labels):
        return sorted(labels, key=lambda label: (float(label), label))
    return sorted(labels)


def validation_size(n_series: int, n_classes: int) -> int:
    """10% of the train file, at least ``MIN_VAL_PER_CLASS`` per class, at most half of it."""
    return max(1, min(max(round(VAL_FRACTION * n_series), MIN_VAL_PER_CLASS * n_classes), n_series // 2))


def _find_files(name: str, files: tuple[str, ...], data_dir: str | os.PathLike[str] | None, archive: str) -> Path:
    folders = candidate_folders(name, data_dir)
    found = next((f for f in folders if all((f / file).is_file() for file in files)), None)
    if found is None:
        raise DataError(
            f"data set {name!r} not found: no folder holds all of {', '.join(files)}; searched "
            f"{', '.join(str(f) for f in folders)}. Get {archive} from the UEA archive ({UEA_URL}) and put those "
            f"files in {cache_dir() / name}, set {DATA_ENV} to a folder containing {name}/, or pass --data-dir DIR"
        )
    return found
