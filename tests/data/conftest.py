"""Data test fixtures: synthetic IDX files, and a lookup isolated from the real env, cache and system."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from wattless.data import _locate, _mnist

N_CLASSES = 10


def _write_idx(path: Path, array: np.ndarray, *, magic: bytes | None = None, cut: int = 0, extra=b""):
    """Write ``array`` as a gzip IDX file; ``magic``, ``cut`` (bytes cut off) and ``extra`` damage it."""
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    raw = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes() + extra
    with gzip.open(path, "wb") as stream:
        stream.write(raw[: len(raw) - cut])
    return path


def _write_idx_dataset(folder: Path, *, n_train: int = 200, n_test: int = 50, seed: int = 0):
    """Four small IDX files (28x28 random images, balanced labels 0..9) in ``folder``; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        _mnist.TRAIN_IMAGES: rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        _mnist.TRAIN_LABELS: np.arange(n_train, dtype=np.uint8) % N_CLASSES,
        _mnist.TEST_IMAGES: rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        _mnist.TEST_LABELS: np.arange(n_test, dtype=np.uint8) % N_CLASSES,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for file, array in arrays.items():
        _write_idx(folder / file, array)
    return arrays


@pytest.fixture
def write_idx():
    """``write_idx(path, array, *, magic=None, cut=0, extra=b"") -> path``: a gzip IDX file, maybe damaged."""
    return _write_idx


@pytest.fixture
def write_idx_dataset():
    """``write_idx_dataset(folder, *, n_train=200, n_test=50, seed=0) -> arrays``: the four IDX files."""
    return _write_idx_dataset


@pytest.fixture
def isolated_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No WATTLESS_DATA/WATTLESS_DOWNLOAD, cache at tmp/cache, system data dir at tmp/system; returns tmp."""
    monkeypatch.delenv(_locate.DATA_ENV, raising=False)
    monkeypatch.delenv(_locate.DOWNLOAD_ENV, raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname: str(tmp_path / "cache"))
    monkeypatch.setattr(_locate, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    return tmp_path


@pytest.fixture
def trust_fake_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip checksum verification for both IDX data sets (synthetic files cannot match the published sums)."""
    for name in ("fashion-mnist", "mnist"):
        monkeypatch.setitem(_mnist.SHA256, name, {})
