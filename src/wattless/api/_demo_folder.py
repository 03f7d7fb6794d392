"""The demo's output folder: what the demo may overwrite without ``--force``.

The demo keeps a manifest (``.wattless-demo.json``) of every file it wrote there, with its SHA-256. A folder may
be refreshed when it is missing or empty, or holds nothing but files of that manifest, each unchanged since the demo
wrote it. Anything else (a file the user made or edited, an unknown file, a sub-folder) is refused without
``--force``, before any work, so nothing is lost.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .._atomic import write_text_atomic
from .._files import file_sha256
from ..errors import ConfigError

MANIFEST = ".wattless-demo.json"
_MAX_MANIFEST_BYTES = 1 << 20
"""A manifest lists about ten files; anything larger is not ours."""
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
"""The temporary files of our atomic writes (``.NAME.<8 hex>.tmp``), left only by a killed process: not the user's."""


def check_demo_folder(out: Path, force: bool) -> None:
    """Raise ConfigError unless the demo may write into ``out``: refused when ``out`` is a file, or holds anything
    the demo did not write or that changed since (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {str(out)!r} is a file, not a folder; choose a folder for the demo")
    if force or not out.exists():
        return
    known = read_manifest(out)
    for entry in sorted(out.iterdir()):
        if (entry.name == MANIFEST and known is not None) or _TEMPORARY.match(entry.name):
            continue
        if known is None or entry.name not in known or not entry.is_file() or entry.is_symlink():
            raise ConfigError(f"{str(entry)!r} is not a file the demo wrote there (it keeps a list in {MANIFEST}); "
                              "choose another -o folder or pass --force to write the demo's files there")
        if _sha256_or_none(entry) != known[entry.name]:
            raise ConfigError(f"{str(entry)!r} was changed since the demo wrote it; choose another -o folder or pass "
                              "--force to overwrite it")


def read_manifest(out: Path) -> dict[str, str] | None:
    """File name -> SHA-256 of the files the demo wrote into ``out``, or None when there is no valid manifest."""
    path = out / MANIFEST
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > _MAX_MANIFEST_BYTES:
            return None
        files = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    return files


def record_demo_files(out: Path, *paths: Path) -> None:
    """Add ``paths`` (files just written into ``out``) with their SHA-256 to the manifest, atomically; written after
    each step, so an interrupted demo still leaves a manifest that matches the folder."""
    files = read_manifest(out) or {}
    files.update({path.name: file_sha256(path) for path in paths if path.is_file()})
    text = json.dumps({"written_by": "wattless demo", "files": dict(sorted(files.items()))}, indent=2)
    write_text_atomic(out / MANIFEST, text + "\n")


def _sha256_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
