"""CIFAR-10 and CIFAR-100 from the official python-pickle archives, unpickled without running any code.

Files (https://www.cs.toronto.edu/~kriz/cifar.html): ``cifar-10-python.tar.gz`` holds
``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``) and
``cifar-100-python.tar.gz`` holds ``cifar-100-python/`` (``train``, ``test``, ``meta``). Each lookup folder
(``<root>/cifar10``, ``<root>/cifar100``, or ``--data-dir`` itself) may hold the ``.tar.gz`` or the
extracted folder. Checksums are md5 because that is what is published: the archives against the sums on
the page above, extracted files against the sums torchvision verifies them with.

The pickles are read with ``encoding="bytes"`` by an unpickler that resolves only numpy's array
reconstruction (``_reconstruct``, ``ndarray``, ``dtype``); any other global, e.g. ``os.system``, is refused
with a DataError before it can run. The official test batch is the test split; validation is a seeded,
stratified 10% of the train batches. Pixels are scaled to [0, 1] and standardized per channel with the
mean and std of the train split: float32 samples of shape ``(3, 32, 32)``. CIFAR-100 uses its 100 fine
labels; ``cifar100-coarse`` (or ``labels="coarse"``) its 20 superclasses.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._dataset import Dataset, register_dataset
from ._locate import DATA_ENV, DOWNLOAD_ENV, cache_dir, candidate_folders, locate_files
from ._split import VAL_FRACTION, holdout_indices

BASE_URL = "https://www.cs.toronto.edu/~kriz/"
IMAGE_SHAPE = (3, 32, 32)
PIXEL_SCALE = 1 / 255
MAX_MEMBER_BYTES = 1 << 28
"""Largest archive member read (bytes); the biggest real one (CIFAR-100 ``train``) is about 155 MB."""


@dataclass(frozen=True)
class Layout:
    """Where one data set's files are: lookup name, archive, folder inside it, and the files."""

    name: str
    archive: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test, self.meta)


CIFAR10 = Layout(
    "cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch", "batches.meta",
)
CIFAR100 = Layout("cifar100", "cifar-100-python.tar.gz", "cifar-100-python", ("train",), "test", "meta")
MD5 = {
    "cifar10": {
        CIFAR10.archive: "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        CIFAR100.archive: "eb9058c3a382ffc7106e4002c42a8d85",
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}
LABEL_KEYS = {"fine": (b"fine_labels", b"fine_label_names"), "coarse": (b"coarse_labels", b"coarse_label_names")}


@register_dataset("cifar10")
def load_cifar10(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """Krizhevsky's CIFAR-10: 32x32 colour images of 10 classes, 50,000 train and 10,000 test."""
    return load_cifar("cifar10", CIFAR10, (b"labels", b"label_names"), data_dir=data_dir, split_seed=split_seed)


@register_dataset("cifar100")
def load_cifar100(*, data_dir: str | None = None, split_seed: int = 0, labels: str = "fine") -> Dataset:
    """CIFAR-100: 32x32 colour images, 100 fine classes (``labels="coarse"``: their 20 superclasses)."""
    if labels not in LABEL_KEYS:
        raise DataError(f"unknown CIFAR-100 labels {labels!r}; use 'fine' or 'coarse'")
    name = "cifar100" if labels == "fine" else "cifar100-coarse"
    return load_cifar(name, CIFAR100, LABEL_KEYS[labels], data_dir=data_dir, split_seed=split_seed)


@register_dataset("cifar100-coarse")
def load_cifar100_coarse(*, data_dir: str | None = None, split_seed: int = 0) -> Dataset:
    """CIFAR-100 with its 20 coarse superclass labels (the same files as ``cifar100``)."""
    return load_cifar100(data_dir=data_dir, split_seed=split_seed, labels="coarse")


def load_cifar(
    name: str, layout: Layout, keys: tuple[bytes, bytes], *, data_dir: str | None, split_seed: int
) -> Dataset:
    """Find, verify and unpickle the files of ``layout``, then split and standardize per channel."""
    label_key, names_key = keys
    source, payloads = read_files(layout, data_dir)

    def origin(file: str) -> str:  # a file in the folder, or a member of the archive
        return f"{source}:{layout.folder}/{file}" if source.name == layout.archive else str(source / file)

    classes = _class_names(read_pickle(payloads[layout.meta], origin(layout.meta)), names_key, origin(layout.meta))
    batches = [_batch(payloads[f], origin(f), label_key, len(classes)) for f in layout.train]
    train_images = np.concatenate([images for images, _ in batches])
    train_labels = np.concatenate([labels for _, labels in batches])
    test_images, test_labels = _batch(payloads[layout.test], origin(layout.test), label_key, len(classes))
    del payloads, batches
    train, val = holdout_indices(
        train_labels, round(VAL_FRACTION * len(train_labels)), "classification", split_seed=split_seed
    )
    train_pixels = train_images[train]
    mean, std = channel_mean_std(train_pixels)
    return Dataset(
        name=name,
        task="classification",
        X_train=standardize(train_pixels, mean, std),
        y_train=train_labels[train],
        X_val=standardize(train_images[val], mean, std),
        y_val=train_labels[val],
        X_test=standardize(test_images, mean, std),
        y_test=test_labels,
        classes=classes,
        preprocessing={
            "kind": "standardize",
            "axis": "channel",
            "pixel_scale": PIXEL_SCALE,
            "mean": mean,
            "std": std,
            "labels": label_key.decode(),
            "validation": f"stratified {VAL_FRACTION:.0%} of the official train set, seed {split_seed}",
        },
        source=str(source),
    )


def read_files(layout: Layout, data_dir: str | os.PathLike[str] | None) -> tuple[Path, dict[str, bytes]]:
    """``(source, {file: bytes})`` from the first lookup folder holding the extracted files or the archive."""
    for folder in candidate_folders(layout.name, data_dir):
        for extracted in (folder / layout.folder, folder):
            if all((extracted / file).is_file() for file in layout.files):
                for file in layout.files:
                    _verify_md5(extracted / file, MD5[layout.name].get(file))
                return extracted, {file: (extracted / file).read_bytes() for file in layout.files}
        if (folder / layout.archive).is_file():
            return folder / layout.archive, _read_archive(folder / layout.archive, layout)
    if os.environ.get(DOWNLOAD_ENV) == "1":
        folder = locate_files(layout.name, (layout.archive,), data_dir=data_dir, sha256={}, base_url=BASE_URL)
        return folder / layout.archive, _read_archive(folder / layout.archive, layout)
    searched = ", ".join(str(f) for f in candidate_folders(layout.name, data_dir))
    raise DataError(
        f"data set {layout.name!r} not found: no folder holds {layout.archive} or {layout.folder}/ "
        f"({', '.join(layout.files)}); searched {searched}. Put {BASE_URL}{layout.archive} (or its extracted "
        f"folder) in {cache_dir() / layout.name}, set {DATA_ENV} to a folder containing {layout.name}/, pass "
        f"--data-dir DIR, or set {DOWNLOAD_ENV}=1 to download it"
    )


def _read_archive(path: Path, layout: Layout) -> dict[str, bytes]:
    _verify_md5(path, MD5[layout.name].get(layout.archive))
    wanted = {f"{layout.folder}/{file}": file for file in layout.files}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                file = wanted.get(member.name.removeprefix("./"))
                if file is None or not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{path}: member {member.name} claims {member.size} bytes; the archive is corrupt")
                found[file] = archive.extractfile(member).read()  # type: ignore[union-attr]
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path}: not a readable .tar.gz archive ({error}); delete it and fetch it again") from error
    missing = [f"{layout.folder}/{file}" for file in layout.files if file not in found]
    if missing:
        raise DataError(f"{path}: the archive lacks {', '.join(missing)}; is it {BASE_URL}{layout.archive}?")
    return found


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global other than numpy's array reconstruction."""


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # what numpy 1.x (and the 2009 files) write
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2.x
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, strings, numbers and numpy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None


def read_pickle(raw: bytes, origin: str) -> Any:
    """The object pickled in ``raw``; DataError naming ``origin`` if it is damaged or asks for any code."""
    try:
        return ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except RefusedGlobal as error:
        raise DataError(
            f"{origin}: refused to unpickle {error}: CIFAR files hold only numpy arrays, lists, dicts, bytes and "
            "strings, so this is not a genuine CIFAR file; delete it and fetch it again"
        ) from None
    except Exception as error:  # a damaged pickle fails in many ways (EOFError, ValueError, KeyError, ...)
        reason = (str(error).splitlines() or [""])[0]
        raise DataError(
            f"{origin}: not a readable CIFAR pickle ({type(error).__name__}: {reason}); delete it and fetch it again"
        ) from error


def _batch(raw: bytes, origin: str, label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(n, 3, 32, 32)`` and int64 labels ``(n,)`` of one pickled batch, checked."""
    batch = read_pickle(raw, origin)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        found = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{origin}: expected a dict with b'data' and {label_key!r}, found {found}; wrong file?")
    data, labels = batch[b"data"], np.asarray(batch[label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{origin}: b'data' should be uint8 of shape (n, 3072), found {what}; the file is corrupt")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise DataError(
            f"{origin}: {label_key!r} should be {len(data)} integer labels, found {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{origin}: label {labels.max()} is out of range 0..{n_classes - 1}")
    return data.reshape(len(data), *IMAGE_SHAPE), labels.astype(np.int64)


def _class_names(meta: Any, key: bytes, origin: str) -> list[str]:
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{origin}: no list of class names under {key!r}; is it the meta file of the data set?")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def channel_mean_std(pixels: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 ``(n, C, H, W)`` pixels scaled to [0, 1], exact from histograms."""
    values = np.arange(256) * PIXEL_SCALE
    means, stds = [], []
    for channel in range(pixels.shape[1]):
        counts = np.bincount(pixels[:, channel].ravel(), minlength=256).astype(np.float64)
        mean = float(counts @ values / counts.sum())
        std = float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
        means.append(mean)
        stds.append(std if std > 0 else 1.0)  # a blank channel keeps scale 1
    return means, stds


def standardize(pixels: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """float32 ``(pixel * PIXEL_SCALE - mean[c]) / std[c]`` via a 256-entry table per channel (no float64 copy)."""
    out = np.empty(pixels.shape, dtype=np.float32)
    for channel, (m, s) in enumerate(zip(mean, std, strict=True)):
        table = ((np.arange(256) * PIXEL_SCALE - m) / s).astype(np.float32)
        out[:, channel] = table[pixels[:, channel]]
    return out


def _verify_md5(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    stat = path.stat()
    actual = _file_md5(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if actual != expected:
        raise DataError(
            f"{path}: md5 {actual} does not match the published {expected}; "
            "the file is damaged or a different version: delete it and fetch it again"
        )


@functools.lru_cache(maxsize=16)
def _file_md5(path: str, mtime_ns: int, size_bytes: int) -> str:
    """Hex md5 of a file, once per process per version; md5 only because it is what CIFAR publishes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
