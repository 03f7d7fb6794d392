"""The one YAML reader: safe tags only, and refusals, before anything is built, of alias bombs, recursive aliases,
duplicate keys, deep nesting and oversized files."""

from __future__ import annotations

import pytest

from wattless._yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_yaml, read_yaml
from wattless.errors import ConfigError


def alias_bomb(levels: int = 9) -> str:
    """``levels`` anchors, each a list of nine aliases of the one before: 9**(levels + 1) strings once expanded."""
    lines = ['  x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


@pytest.mark.parametrize("text", [
    f"name:\n{alias_bomb()}\nsteps: [quantize.int8]\n",
    f"description:\n{alias_bomb(10)}\n",
    "a: &m {k: 1}\nb: &n {<<: [*m, *m, *m]}\n" + "".join(  # merge keys multiply mappings the same way
        f"c{i}: &c{i} {{<<: [{', '.join(['*c' + str(i - 1) if i > 1 else '*n'] * 9)}]}}\n" for i in range(1, 9)),
])
def test_an_alias_bomb_is_refused_before_it_is_expanded(text):
    with pytest.raises(ConfigError, match="aliases"):
        parse_yaml(text, "bomb.yaml")


def test_aliases_and_merge_keys_within_the_bound_still_work():
    data = parse_yaml("base: &b {bits: 4}\na: &x [1, 2]\nb: *x\nstep: {<<: *b, symmetric: true}\n", "ok.yaml")
    assert data == {"base": {"bits": 4}, "a": [1, 2], "b": [1, 2], "step": {"bits": 4, "symmetric": True}}
    nested = parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "deep.yaml")
    for _ in range(MAX_DEPTH - 1):
        (nested,) = nested
    assert nested == []


def test_a_long_document_is_refused_from_its_events():
    with pytest.raises(ConfigError, match="values"):
        parse_yaml("[" + "1," * MAX_NODES + "]", "long.yaml")


@pytest.mark.parametrize("text, message", [
    ("name: &x [*x]\n", "recursive alias"),
    ("a: &x {b: *x}\n", "recursive alias"),
    ("steps:\n  - quantize.ptq: {bits: 4, bits: 8}\n", "'bits' is given twice"),
    ("name: a\nsteps: []\nname: b\n", "'name' is given twice"),
    ("x: " + "[" * 500_000 + "]" * 500_000 + "\n", "nest more than"),  # libyaml's composer would crash
    ("!!python/object/apply:os.system ['echo owned']", "not valid YAML"),
    ("a: [1\n", "not valid YAML"),
    ("name: !!int x\n", "a tagged value cannot be read"),  # found by make fuzz
    ("when: !!timestamp yesterday\n", "a tagged value cannot be read"),
])
def test_bad_documents_are_one_config_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_yaml(text, "bad.yaml")


def test_a_file_larger_than_the_cap_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_BYTES + "\nsteps: []\n")
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml(path, "recipe")


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        read_yaml(tmp_path, "study")
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(tmp_path / "nope.yaml", "study")


def test_every_yaml_read_of_the_package_goes_through_this_reader():
    from pathlib import Path

    import wattless

    package = Path(wattless.__file__).parent
    readers = [str(path.relative_to(package)) for path in package.rglob("*.py")
               if "yaml.safe_load" in path.read_text() or "yaml.load" in path.read_text()]
    assert readers == []
