"""Result records gathered from files for ``wattless report``: results folders, record JSON files, searched folders.

Each kind of source is one reader in :data:`SOURCES`, chosen by file suffix (JSON records, a SQLite
``runs.db`` of ``wattless sweep``/``search``); a new source is one more entry there. Records come from files
the user may not control, so every record is checked before any rendering code sees it, and a bad file is one
error naming it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .comparison import Record, record_task

RECORD_KEYS = frozenset({"accuracy", "rmse", "mae", "r2", "params", "size_bytes", "latency_ms", "energy_j_per_sample"})
"""A JSON object holding at least one of these keys is a result record."""
_NUMBER_KEYS = ("accuracy", "rmse", "mae", "r2", "params", "nonzero_params", "size_bytes", "size_bytes_fp32",
                "compression_ratio", "macs", "bops", "seed")
_TASKS = ("classification", "regression")


@dataclass
class Collection:
    """Records read from the given paths, with each record's source file and the folder files skipped."""

    records: list[Record] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def _read_json_source(path: Path) -> list[Record] | None:
    """Records of a JSON file: one record, a list of them (``results.json``, ``*.steps.json``), the output
    of ``demo --json`` (``records``) or ``compress --json`` (the result and its ``baseline``); None if the
    file is valid JSON but holds no records."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"cannot read {str(path)!r}: {error.strerror}; check the file's permissions") from None
    except UnicodeDecodeError:
        raise DataError(f"{str(path)!r} is not a text (UTF-8 JSON) file; pass a results JSON file") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{str(path)!r} is not valid JSON ({error.msg}, line {error.lineno}); "
                        "pass a file written by wattless (results.json, measure --json)") from None
    except (ValueError, RecursionError) as error:  # numbers too long, nesting too deep
        raise DataError(f"{str(path)!r} is not a results JSON file ({str(error)[:80]})") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    elif isinstance(data, dict) and isinstance(data.get("baseline"), dict):
        data = [data["baseline"], {k: v for k, v in data.items() if k not in ("baseline", "steps", "candidates")}]
    candidates = data if isinstance(data, list) else [data]
    if not any(isinstance(item, dict) and RECORD_KEYS & item.keys() for item in candidates):
        return None
    for position, item in enumerate(candidates):
        check_record(item, f"{str(path)!r}, record {position}")
    return candidates


def _read_sqlite_source(path: Path) -> list[Record] | None:
    """The records of the finished runs in a runs database (``wattless sweep``/``search``), named by recipe."""
    from ..runs.db import RunsDB

    with RunsDB(path, create=False) as db:
        rows = db.list(status="done")
    records = []
    for row in rows:
        record = row.get("record")
        if isinstance(record, dict):
            check_record(record, f"{str(path)!r}, run {row['id']}")
            name = record.get("name") or row.get("recipe_name") or f"run {row['id']}"
            records.append({**record, "name": f"{name} (seed {row['seed']})" if row.get("seed") is not None
                            else name})
    return records or None


@dataclass(frozen=True)
class Source:
    """How to read one kind of file; ``in_folders``: also picked up when a folder is searched."""

    read: Callable[[Path], list[Record] | None]
    in_folders: bool


SOURCES: dict[str, Source] = {
    ".json": Source(_read_json_source, in_folders=True),
    ".db": Source(_read_sqlite_source, in_folders=False),
}


def collect_records(paths: list[str | os.PathLike]) -> Collection:
    """Every record under ``paths`` (files, or folders searched recursively, hidden entries skipped).

    Each record is a shallow copy with a ``name`` (derived from its stage, model or file when missing) and
    its ``source`` file. A file given by name must hold records; a JSON file found in a folder that holds
    none is listed in ``skipped``. Raises ConfigError/DataError naming the path when a path is missing,
    unsupported or malformed, or when nothing at all was found.
    """
    if not paths:
        raise ConfigError("no runs given; pass a results folder or JSON files of records")
    collection, seen = Collection(), set()
    for given in map(Path, paths):
        if given.is_dir():
            files, explicit = _search_folder(given), False
        elif given.is_file():
            files, explicit = [given], True
        else:
            raise ConfigError(f"{str(given)!r} does not exist; pass a results folder or JSON files of records")
        for path in files:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            _add_file(collection, path, explicit)
    if not collection.records:
        where = ", ".join(repr(str(path)) for path in paths)
        raise DataError(f"no result records found in {where}; pass a results folder (results.json) or JSON "
                        "files written by `wattless measure --json`")
    return collection


def _add_file(collection: Collection, path: Path, explicit: bool) -> None:
    source = SOURCES.get(path.suffix.lower())
    if source is None:
        raise ConfigError(f"{str(path)!r} is not a results file; pass a results folder or JSON files "
                          f"({', '.join(SOURCES)})")
    records = source.read(path)
    if records is None:
        if explicit:
            raise DataError(f"{str(path)!r} holds no result records; pass a file written by wattless "
                            "(results.json, measure --json, OUT.steps.json)")
        collection.skipped.append(path)
        return
    collection.sources.append(path)
    for position, record in enumerate(records):
        name = record.get("name") or record.get("stage") or record.get("model") or f"{path.stem}#{position}"
        collection.records.append({**record, "name": str(name), "source": str(path)})


def _search_folder(folder: Path) -> list[Path]:
    """Files under ``folder`` a folder search reads, in sorted path order; hidden files and folders skipped."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [Path(root) / name for name in sorted(files) if not name.startswith(".")
                  and (source := SOURCES.get(Path(name).suffix.lower())) is not None and source.in_folders]
    return found


def group_records(records: list[Record]) -> dict[tuple[str, str], list[Record]]:
    """Records by ``(dataset, task)`` in order of first appearance; a name repeated within a group gets the
    end of its source path appended (``fp32 (a/results.json)``), so every point and row can be told apart."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((str(record.get("dataset") or "unknown data set"), record_task(record)), []).append(record)
    for members in groups.values():
        names = [record["name"] for record in members]
        for name in {name for name in names if names.count(name) > 1}:
            _tell_apart([record for record in members if record["name"] == name])
    return groups


def _tell_apart(records: list[Record]) -> None:
    """Append to each record's name the shortest end of its source path that no other record here shares."""
    parts = [Path(record.get("source") or "").parts for record in records]
    for depth in range(1, max(map(len, parts)) + 1):
        tails = ["/".join(p[-depth:]) for p in parts]
        if len(set(tails)) == len(tails):
            break
    for record, tail in zip(records, tails, strict=True):
        record["name"] = f"{record['name']} ({tail})"


def slug(text: str) -> str:
    """A file-name-safe lower-case form of ``text``: ``"csv:data/My Set.csv"`` -> ``"csv-data-my-set-csv"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "data"


def check_record(record: Any, where: str) -> None:
    """Raise DataError unless ``record`` has the shape the report code reads (numbers where numbers go)."""
    if not isinstance(record, dict):
        raise DataError(f"{where} must be a record object, got {record!r:.60}")
    for key in _NUMBER_KEYS:
        _expect_number(record.get(key), f"{where}: {key!r}")
    if record.get("task") is not None and record["task"] not in _TASKS:
        raise DataError(f"{where}: task {record['task']!r} unknown; expected classification or regression")
    for entry in _expect_list_of_objects(record.get("latency_ms"), f"{where}: 'latency_ms'"):
        for key in ("batch", "threads", "median", "p25", "p75"):
            _expect_number(entry.get(key), f"{where}: latency entry {key!r}")
    for layer in _expect_list_of_objects(record.get("macs_per_layer"), f"{where}: 'macs_per_layer'"):
        for key in ("macs", "params"):
            _expect_number(layer.get(key), f"{where}: layer {key!r}")
    energy = record.get("energy_j_per_sample")
    if energy is not None:
        if not isinstance(energy, dict):
            raise DataError(f"{where}: 'energy_j_per_sample' must be an object with value and method")
        _expect_number(energy.get("value"), f"{where}: energy 'value'")
        _expect_number(energy.get("batch"), f"{where}: energy 'batch'")
        for layer in _expect_list_of_objects(energy.get("layers"), f"{where}: energy 'layers'"):
            _expect_number(layer.get("j"), f"{where}: energy layer 'j'")
    for key in ("env", "weight_bits"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise DataError(f"{where}: {key!r} must be an object")
    _check_recipe(record.get("recipe"), where)


def _check_recipe(recipe: Any, where: str) -> None:
    steps = recipe if isinstance(recipe, list) else [recipe]
    for step in steps:
        if isinstance(step, dict) and step.get("config") is not None and not isinstance(step["config"], dict):
            raise DataError(f"{where}: a recipe step's 'config' must be an object")


def _expect_number(value: Any, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise DataError(f"{what} must be a number, got {value!r:.60}")


def _expect_list_of_objects(value: Any, what: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DataError(f"{what} must be a list of objects")
    return value
