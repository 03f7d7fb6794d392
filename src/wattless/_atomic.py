"""Atomic file writes: readers see the old file or the complete new one, never a partial write.

A write goes to a hidden temporary beside its target, ``.NAME.<pid>.<8 hex>.tmp`` (a file, or a staging folder),
renamed over ``NAME`` when complete. A process killed mid-write (``kill -9``) leaves its temporary behind; the next
write of ``NAME`` removes those whose writer is gone: its pid no longer runs on this machine, or the temporary is
untouched for ``PID_REUSED_AFTER_S`` (the pid may have been reused). The pid-less ``.NAME.<8 or 32 hex>.tmp`` of
earlier versions go once untouched for ``STALE_AFTER_S``. No other name is ever removed.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_AFTER_S = 3600.0
"""A pid-less temporary (earlier versions) untouched this long, seconds, is stale."""
PID_REUSED_AFTER_S = 86400.0
"""A temporary untouched this long, seconds, is stale even though a process with its writer's pid runs: a writer
still busy after a day (a staging folder is touched only when written into) is less likely than a reused pid."""


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path``, ``.NAME.<pid>.<8 hex>.tmp``, after removing stale ones of ``path``."""
    path = Path(path)
    remove_stale_temporaries(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by writers that are gone; returns those removed."""
    path = Path(path)
    ours = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d{{1,10}})\.[0-9a-f]{{8}}|[0-9a-f]{{8}}|[0-9a-f]{{32}})\.tmp")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:  # no folder yet, or not readable: nothing of ours to clean
        return []
    removed = []
    for entry in entries:
        match = ours.fullmatch(entry.name)
        if match is None or not _is_stale(entry, match.group(1)):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:  # another process cleaned it first, or it is not ours to remove
            continue
        removed.append(Path(entry.path))
    return removed


def _is_stale(entry: os.DirEntry, pid: str | None) -> bool:
    try:
        age = time.time() - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    if pid is None:
        return age > STALE_AFTER_S
    return age > PID_REUSED_AFTER_S or not process_alive(int(pid))



def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs on this machine; a zombie (killed, not yet reaped) counts as gone. True where
    that cannot be asked (Windows: signal 0 is CTRL_C_EVENT there, not a question). Standard library only, like
    the rest of this module."""
    if not pid:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # no such process, or a pid this system cannot have
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:  # "pid (name) state ...": the state follows the last ')'
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path``; when the block succeeds it replaces ``path`` in one rename.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def staging_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new hidden folder beside ``path`` (named as its temporaries), removed with what is left in it at the end.

    Write ``folder / NAME`` there, then move it onto ``path`` with one ``os.replace`` inside the block.
    """
    folder = temporary_path(path)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
