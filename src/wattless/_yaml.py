"""Reading user YAML safely: the one reader of YAML files (:func:`read_yaml`) and of YAML text given on a command
line (:func:`parse_yaml`), with one clear error for a missing, oversized or broken file.

Both use ``yaml.SafeLoader`` (no tags that run code) and refuse, before building any Python object:
a duplicate key in a mapping, a recursive alias, and a document that holds more than :data:`MAX_NODES` values once
its aliases are expanded (an alias "bomb": ten lines of ``&a [*a, *a, ...]`` anchors expand to billions of values
that any later ``str()`` or JSON dump of them would try to build).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import CollectionEndEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from .errors import ConfigError

MAX_BYTES = 1_000_000
"""Largest YAML file read (bytes): recipes, ladders and studies are a few hundred bytes."""
MAX_NODES = 100_000
"""Most values (scalars, lists and mappings) a YAML document may hold, written out or with its aliases expanded."""
MAX_DEPTH = 100
"""Deepest nesting of lists and mappings read (composing a deeper document recurses, libyaml's without a bound)."""
MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLSyntaxError(ConfigError):
    """Text that is not YAML at all (callers reading a plain word as text may catch it)."""


class _Problem(Exception):
    """A document this reader refuses; its message names the problem and where it is."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when PyYAML has it: faster
    """``SafeLoader`` that refuses duplicate keys (the later value would silently win)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class gives its own error
                continue
            if duplicate:
                raise _Problem(f"the key {str(key)[:80]!r} is given twice{_where(key_node)}; keep one")
        return super().construct_mapping(node, deep=deep)


def _where(node: Any) -> str:
    """`` (line L, column C)`` of a node or event."""
    mark = node.start_mark
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_expanded_size(root: Node) -> None:
    """Refuse a recursive alias, or more than :data:`MAX_NODES` values with every alias expanded (counted on the
    composed graph, where an alias is a shared node, without expanding anything)."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()  # the nodes on the current path from the root
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            entered.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise _Problem(f"it holds more than {MAX_NODES:,} values once its aliases (*name) are expanded; "
                               "write the values out or use fewer aliases")
            continue
        if key in sizes:
            continue
        if key in entered:
            raise _Problem(f"an alias refers to a value that contains it{_where(node)}; remove the recursive alias")
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _check_events(text: str) -> None:
    """Refuse more than :data:`MAX_NODES` values as written, or nesting deeper than :data:`MAX_DEPTH`, from the
    parser's events (no recursion, nothing built)."""
    loader = _Loader(text)
    try:
        depth = nodes = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, NodeEvent):
                nodes += 1
                if nodes > MAX_NODES:
                    raise _Problem(f"it holds more than {MAX_NODES:,} values; a config is short")
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Problem(f"lists and mappings nest more than {MAX_DEPTH} deep{_where(event)}; flatten it")
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _load(text: str) -> Any:
    _check_events(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _describe(exc: BaseException) -> str:
    """The first line of a YAML error, with its line and column when it has them."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def parse_yaml(text: str, source: str) -> Any:
    """The value of the YAML ``text`` (``source`` names it in errors: a file, ``--step``, ``--model-arg``)."""
    try:
        return _load(text)
    except _Problem as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read; flatten it") from None
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(f"{source}: not valid YAML ({_describe(exc)})") from None
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:  # a !!tag on a value it does not fit
        raise ConfigError(f"{source}: a tagged value cannot be read ({_describe(exc)}); remove the !!tag or fix the "
                          "value") from None


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed contents of the YAML file ``path`` (a ``what`` file: recipe, ladder, study), at most
    :data:`MAX_BYTES` bytes."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} file {str(path)[:200]!r} not found")
    if not path.is_file():
        raise ConfigError(f"{what} file {str(path)[:200]!r} is not a regular file")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {str(path)[:200]!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{what} file {str(path)[:200]!r} is larger than {MAX_BYTES:,} bytes; a {what} is a "
                          "short YAML file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid YAML (not UTF-8 text)") from None
    return parse_yaml(text, str(path))
