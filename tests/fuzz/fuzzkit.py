"""What every fuzz module shares: the settings of the selected profile, the property every command must hold, and
strategies for hostile values.

The property (:func:`run_hostile`): run ``wattless ARGS`` in-process in a fresh folder holding ``files``; the command
either succeeds (exit 0) or refuses with exit 2 and exactly one ``error:`` line (at most :data:`MAX_ERROR_CHARS`
characters) on stderr; never a traceback (exit 1); on a refusal every file is left as it was and nothing is added
(no output, no hidden temporary); the files named ``inputs`` are unchanged even on success; its peak memory stays
under ``10 x input bytes + 200 MB`` for a refusal (the target of issue 17) and :data:`SUCCESS_MEMORY` for a success;
it ends within :data:`HARD_LIMIT_S` seconds (hypothesis' deadline reports slower examples earlier).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import resource
import signal
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from wattless.testing import CliResult, run_cli

PROFILE_ENV = "WATTLESS_FUZZ_PROFILE"
PROFILE = os.environ.get(PROFILE_ENV, "ci")
"""``ci`` (short, derandomized: ``make test``) or ``long`` (``make fuzz``); registered in conftest.py."""
MAX_ERROR_CHARS = 2000
"""An error line echoes what was wrong, capped: a hostile value must not come back whole."""
REFUSAL_MEMORY = 200 * 2**20
SUCCESS_MEMORY = 1536 * 2**20
ADDRESS_SPACE_MARGIN = 4 * 2**30
"""The example runs under an address-space limit this far above the process' size: a runaway allocation fails
as a MemoryError (a failed example) instead of exhausting the machine."""
HARD_LIMIT_S = 180
TINY_STUDY = """\
name: tiny
models: [{name: mlp, kwargs: {hidden: [8]}}]
datasets: [digits]
seeds: [0]
train: {epochs: 1}
recipes: [{name: pruned, steps: [{prune.magnitude: {sparsity: 0.5, finetune_epochs: 0}}]}]
measure: {batches: [1], repeats: 1, engines: [torch]}
"""
"""The seed study: two cheap trials (the baseline and a pruned model)."""
VERBOSE = os.environ.get("WATTLESS_FUZZ_VERBOSE") == "1"
"""Print every example's command and outcome (with ``pytest -s``): to see what a property tries."""


def fuzz_settings(examples: int = 20) -> settings:
    """The selected profile, with ``examples`` examples in ``ci`` and 25 times as many in ``long`` (500 for the quick
    properties; those whose valid inputs run a compression or a sweep take fewer)."""
    return settings(settings.get_profile(f"fuzz-{PROFILE}"), max_examples=examples * (1 if PROFILE == "ci" else 25))


class FuzzTimeout(Exception):
    """Raised in the main thread by SIGALRM when an example runs past :data:`HARD_LIMIT_S`."""


def _status(field: str) -> int | None:
    """A ``Vm*`` line of /proc/self/status in bytes, or None off Linux."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _reset_peak() -> bool:
    """Reset VmHWM (the peak resident size) so that it measures this example alone."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _guarded(limit_s: float) -> Iterator[dict]:
    """Run the body under an address-space limit and a SIGALRM timer; yields what it saw (``peak``, ``timed_out``)."""
    seen: dict = {"timed_out": False, "peak": None}
    size = _status("VmSize")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if size is not None:
        limit = size + ADDRESS_SPACE_MARGIN
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    def on_alarm(signum, frame):
        seen["timed_out"] = True
        raise FuzzTimeout(f"the command ran for more than {limit_s} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    rss = _status("VmRSS") if _reset_peak() else None
    try:
        yield seen
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        peak = _status("VmHWM")
        if rss is not None and peak is not None:
            seen["peak"] = peak - rss


class Seed(bytes):
    """A seed file's bytes, shown short in hypothesis' report of a failing example."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


class Shown:
    """Any seed value, shown short in hypothesis' report of a failing example."""

    def __init__(self, value: Any, label: str):
        self.value, self.label = value, label

    def __repr__(self) -> str:
        return f"<{self.label}>"


def summary(err: str, lines: int = 40, width: int = 300) -> str:
    """The end of ``err``, each line cut to ``width`` characters: a traceback stays readable whatever it echoes."""
    return "\n".join(line[:width] + ("..." if len(line) > width else "") for line in err.splitlines()[-lines:])


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones too): files with their bytes, folders as None."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def check_refusal_line(result: CliResult) -> None:
    """Exit 2 says why in exactly one ``error:`` line (the last on stderr), of bounded length."""
    lines = result.err.splitlines()
    assert result.err.endswith("\n") and lines and lines[-1].startswith("error: "), summary(result.err)
    assert sum(line.startswith("error:") for line in lines) == 1, summary(result.err)
    others = [line for line in lines[:-1] if not line.startswith("warning: ")]
    assert not others, f"exit 2 printed more than its error line:\n{summary(result.err)}"
    assert len(lines[-1]) <= MAX_ERROR_CHARS, f"error line of {len(lines[-1])} characters: {lines[-1][:300]!r}..."


def run_hostile(args: Sequence[str | Path], files: Mapping[str, bytes] | None = None, *,
                inputs: Sequence[str] | None = None, limit_s: float = HARD_LIMIT_S,
                partial: str | None = None) -> CliResult:
    """Run ``wattless ARGS`` in a fresh folder holding ``files`` (name -> bytes; names may hold ``/``) and check the
    property of the module docstring. ``inputs`` (default: every file) must be unchanged whatever the outcome. A
    refusal whose error line holds ``partial`` is one after work that stays (a sweep's failed trials): it may write."""
    files = dict(files or {})
    inputs = list(files) if inputs is None else list(inputs)
    start = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as name:
        folder = Path(name)
        for relative, data in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        before = snapshot(folder)
        os.chdir(folder)
        try:
            with _guarded(limit_s) as seen:
                result = run_cli(*args)
        finally:
            os.chdir(start)
        after = snapshot(folder)
    shown = " ".join(map(str, args))[:300]
    if VERBOSE:
        peak = "?" if seen["peak"] is None else f"{seen['peak'] / 2**20:.0f} MB"
        print(f"\n[fuzz] exit {result.code}, {peak}: wattless {shown}\n       {result.err.strip()[-300:]!r}")
    assert not seen["timed_out"], f"`wattless {shown}` ran past {limit_s} s:\n{summary(result.err)}"
    assert "Traceback" not in result.err, f"`wattless {shown}` printed a traceback:\n{summary(result.err)}"
    assert result.code in (0, 2), f"`wattless {shown}` exited {result.code}:\n{summary(result.err)}"
    changed = sorted(k for k in inputs if before.get(k) != after.get(k))
    assert not changed, f"`wattless {shown}` (exit {result.code}) changed or removed its input(s) {changed}"
    size = sum(map(len, files.values()))
    if result.code == 2:
        check_refusal_line(result)
        added = sorted(set(after) - set(before))
        altered = sorted(k for k in before if before[k] != after.get(k))
        kept = partial is not None and partial in result.err
        assert kept or (not added and not altered), \
            f"`wattless {shown}` refused ({result.err.strip()[:300]}) but added {added}, changed or removed {altered}"
        bound = 10 * size + REFUSAL_MEMORY
    else:
        bound = SUCCESS_MEMORY
    if seen["peak"] is not None:
        assert seen["peak"] <= bound, f"`wattless {shown}` (exit {result.code}) took {seen['peak'] / 2**20:.0f} MB " \
                                      f"at its peak, over {bound / 2**20:.0f} MB"
    return result


# Hostile values ------------------------------------------------------------------------------------------------

HUGE_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**20, 10**30, -(2**63) - 1, -(10**20)])
INTS = st.one_of(st.integers(-3, 300), HUGE_INTS, st.integers())
FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1e-320, 1e-45, 0.5, 1e300, -1e300, 1.7976931348623157e308]),
                   st.floats(allow_nan=False, allow_infinity=False))
TEXTS = st.one_of(
    st.sampled_from(["", " ", "zzz", "NaN", "nan", "inf", "-inf", "Infinity", "1e999", "null", "true", "0x10", "-7",
                     "١٢", "../../etc/passwd", "a\nb", "a\x00b", "\ud7ff\u202e", "[", "{", "\"", "mlp", "digits",
                     "csv:none.csv", "ts:none", "x" * 5000]),
    st.text(max_size=30),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXTS)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXTS, inner, max_size=5),
    max_leaves=20,
)
"""Every JSON type, with the edges readers trip on: huge and negative numbers, special strings, nesting."""


def nested(depth: int, leaf: object = 0) -> object:
    """``[[[...leaf...]]]``, ``depth`` lists deep."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


DEEP = st.integers(50, 400).map(nested)
HOSTILE_JSON = st.one_of(JSON_VALUES, DEEP)
"""JSON values, and lists nested a few hundred deep (what json.dumps can still write)."""


TRAIN_TINY_ON = ("train", "--model", "mlp", "--model-arg", "hidden=[8]", "--epochs", "1", "--batch-size", "16",
                 "-o", "out.wlz", "-q")
"""``train`` of a tiny MLP for one epoch: what reads a ``--dataset`` fastest."""
CELLS = st.one_of(
    st.sampled_from(["inf", "-inf", "Infinity", "nan", "NaN", "", " ", "1e308", "-1e308", "1e309", "1e300", "9" * 400,
                     "0x10", "null", "None", "True", "é", "日本", "\u202e", '"', '""', "a,b", '"a\nb"', "1e-320", "-0",
                     "1,000", "\x00", "\r", "?"]),
    TEXTS, FLOATS.map(repr),
)
"""A table cell or time-series token as a hostile table holds it (written raw: quotes and commas may break the row)."""



def option_texts(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A command-line value: ``valid`` ones and what a careless or hostile user types instead."""
    numeric = st.one_of(INTS.map(str), FLOATS.map(repr), st.sampled_from(["1.5", "1e3", "1_000", "+1", "-0", "0"]))
    return st.one_of(valid, numeric, TEXTS, st.lists(st.sampled_from(["1", "", " ", "2", "-1", "x"]),
                                                     min_size=1, max_size=4).map(",".join))


def is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def alias_bomb(depth: int, width: int) -> str:
    """A YAML flow sequence whose anchors expand to ``width ** depth`` leaves (the issue's bomb: 9 levels of 9)."""
    parts = ["&a0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, depth):
        parts.append(f"&a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


BOMBS = st.tuples(st.integers(1, 9), st.integers(1, 9)).filter(lambda t: t[1] ** t[0] <= 10**7).map(
    lambda t: alias_bomb(*t))
"""Anchors that expand to up to ten million leaves (the issue's: 9 levels of 9, 387 million, is a case below)."""
YAML_WEAPONS = st.one_of(BOMBS, st.sampled_from([
    "&s [*s]", "&m {a: *m}", "*nowhere", "!!python/object/apply:os.system [echo pwned]", "!!python/name:os.system",
    "!!binary aGVsbG8=", "!!set {a, b}", "!!timestamp 2001-12-14", "2001-12-14t21:59:43.10-05:00", ".inf", "-.inf",
    ".nan", "0o17", "0x1F", "1_000", "~", "!!float 1e999", "!!int x", "!!str", "{<<: {a: 1}}", "[1, 2, [3, [4]]]",
    "{? [a, b]: c}", "!custom x", "'unterminated", "[" * 5000, "[" * 600 + "]" * 600, "{a: 1, a: 2}", "\"\\ud800\"",
]))
"""YAML's own weapons: alias bombs and self-references, tags (unsafe ones too), timestamps, sets, merge keys, deep
nesting, and text that is not YAML."""
YAML_VALUES = st.one_of(HOSTILE_JSON.map(json.dumps), YAML_WEAPONS)
"""A value as YAML text: any JSON value (JSON is YAML), or one of YAML's own weapons."""


# Model metadata (.wlz files and the ONNX `wattless` record) -------------------------------------------------

EXTRA_PATHS = [("original",), ("original", "size_bytes_fp32"), ("original", "model"), ("imported_from",),
               ("wattless_version",), ("model", "unsaved"), ("model", "kwargs", "hidden", 0), ("packed", "1.weight"),
               ("structure", 0), ("recipe", 0), ("recipe", 0, "config"), ("recipe", 0, "technique"),
               ("recipe", 0, "config", "version"), ("zzz",)]
"""Paths the seed file lacks but a file may hold (setting them creates the parents)."""
READ_PATHS = [("model",), ("model", "name"), ("model", "kwargs"), ("model", "input_shape"), ("model", "num_outputs"),
              ("dataset",), ("dataset", "name"), ("dataset", "input_shape"), ("dataset", "num_outputs"),
              ("dataset", "classes"), ("dataset", "task"), ("dataset", "preprocessing"), ("dataset", "sizes"),
              ("dataset", "preprocessing", "kind"), ("dataset", "preprocessing", "mean"), ("task",), ("seed",),
              ("recipe",), ("train",), ("packed",), ("structure",), ("original", "size_bytes_fp32"),
              ("size_bytes_fp32",), ("params",)]
"""The fields the commands read: drawn as often as all the others together."""


def metadata_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in the metadata (lists: their first and last item only)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += metadata_paths(item, (*prefix, key))
    elif isinstance(value, list) and value:
        for index in sorted({0, len(value) - 1}):
            found += metadata_paths(value[index], (*prefix, index))
    return found


def forge(meta: dict[str, Any], path: tuple, value: Any, delete: bool) -> dict[str, Any]:
    """``meta`` with the value at ``path`` replaced (parents made as needed) or deleted."""
    meta = copy.deepcopy(meta)
    parent: Any = meta
    for key in path[:-1]:
        if isinstance(parent, dict):
            parent = parent.setdefault(key, {}) if not isinstance(parent.get(key), dict | list) else parent[key]
        elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            parent = parent[key]
        else:
            return meta  # the path goes through a value a previous change replaced: nothing to forge
    last = path[-1]
    if isinstance(parent, dict):
        if delete:
            parent.pop(last, None)
        else:
            parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int):
        if last >= len(parent):
            parent.append(value)
        elif delete:
            del parent[last]
        else:
            parent[last] = value
    return meta


def metadata_edits(meta: dict[str, Any]) -> st.SearchStrategy[list[tuple[tuple, Any, bool]]]:
    """One to three edits: (path, new value, or delete the key)."""
    paths = st.sampled_from(READ_PATHS) | st.sampled_from(metadata_paths(meta) + EXTRA_PATHS)
    delete = st.sampled_from([False, False, False, True])
    return st.lists(st.tuples(paths, HOSTILE_JSON, delete), min_size=1, max_size=3)


def edited(meta: dict[str, Any], edits: list[tuple[tuple, Any, bool]]) -> dict[str, Any]:
    """``meta`` with every edit of :func:`metadata_edits` applied in order."""
    for path, value, delete in edits:
        meta = forge(meta, path, value, delete)
    return meta
