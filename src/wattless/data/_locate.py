"""Finding a data set's files: the lookup order, sha256 verification, and the opt-in download.

Lookup order: the explicit ``data_dir`` (the folder itself, or ``data_dir/<name>``), then
``$WATTLESS_DATA/<name>``, the user cache directory, system folders such as
``/usr/share/datasets/<name>`` (Debian's packages), and last a download into the cache, only when
``WATTLESS_DOWNLOAD=1``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import platformdirs

from .._files import file_sha256 as sha256_of_file
from ..errors import DataError

DATA_ENV = "WATTLESS_DATA"
DOWNLOAD_ENV = "WATTLESS_DOWNLOAD"
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)


def cache_dir() -> Path:
    """The per-user cache folder of wattless, where downloads go."""
    return Path(platformdirs.user_cache_dir("wattless"))


def candidate_folders(name: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders searched for data set ``name``, in lookup order."""
    folders = [Path(data_dir), Path(data_dir) / name] if data_dir is not None else []
    if os.environ.get(DATA_ENV):
        folders.append(Path(os.environ[DATA_ENV]) / name)
    folders.append(cache_dir() / name)
    folders.extend(system_dir / name for system_dir in SYSTEM_DATA_DIRS)
    return folders


def locate_files(
    name: str,
    files: Sequence[str],
    *,
    data_dir: str | os.PathLike[str] | None,
    sha256: Mapping[str, str],
    base_url: str,
) -> Path:
    """The first folder holding every one of ``files``, each checked against its published ``sha256``.

    Raises DataError naming the data set, the files and the folders searched when none has them all
    (and downloading is not allowed), or naming a file whose checksum differs.
    """
    folders = candidate_folders(name, data_dir)
    found = next((f for f in folders if all((f / file).is_file() for file in files)), None)
    if found is None:
        if os.environ.get(DOWNLOAD_ENV) != "1":
            raise DataError(
                f"data set {name!r} not found: no folder holds all of {', '.join(files)}; searched "
                f"{', '.join(str(f) for f in folders)}. Set {DATA_ENV} to a folder containing {name}/ "
                f"or pass --data-dir DIR (or set {DOWNLOAD_ENV}=1 to download from {base_url})"
            )
        found = cache_dir() / name
        for file in files:
            if not (found / file).is_file():
                _download(base_url + file, found / file, sha256.get(file))
    for file in files:
        if file in sha256:
            verify_sha256(found / file, sha256[file])
    return found


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, hashed once per process for as long as its size and mtime stay the same."""
    stat = path.stat()
    return _hash_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _hash_file(path: str, mtime_ns: int, size_bytes: int) -> str:
    return sha256_of_file(path)


def verify_sha256(path: Path, expected: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 {actual} does not match the published {expected}; "
            "the file is damaged or a different version: delete it and fetch it again"
        )


def _download(url: str, target: Path, expected_sha256: str | None) -> None:
    """Fetch ``url`` into ``target`` atomically (temp file + rename), refusing a wrong checksum."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except OSError as error:
        raise DataError(f"downloading {url} failed ({error}); put the file in {target.parent}") from error
    actual = hashlib.sha256(payload).hexdigest()
    if expected_sha256 is not None and actual != expected_sha256:
        raise DataError(f"{url}: downloaded sha256 {actual} does not match the published {expected_sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as temp:
        temp.write(payload)
    os.replace(temp.name, target)
