"""The package's shape: no import cycles (module-level or inside functions), small files, a thin command line.

Read from the source with the standard library's ``ast``, so a cycle hidden in a function-level import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "wattless"
MAX_LINES = 400
CLI_MAX_LINES = 200
CLI_MAY_IMPORT = ("wattless.api", "wattless.errors", "wattless.report", "wattless.cli")
"""The command line parses, calls the public API and renders: nothing else of the package."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The wattless modules ``path`` imports anywhere in its body (``from .x import y`` counts ``x``, and ``x.y``
    when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            if node.module or not submodules:  # ``from . import x`` of submodules needs nothing else of the package
                found.add(target)
            found.update(submodules)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: imported_modules(path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_stay_small_enough_to_read_in_one_sitting(name):
    path = MODULES[name]
    limit = CLI_MAX_LINES if name.startswith("wattless.cli") else MAX_LINES
    lines = len(path.read_text().splitlines())
    assert lines <= limit, f"{path.relative_to(SRC)} has {lines} lines; split it (limit {limit})"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("wattless.cli")))
def test_the_command_line_uses_only_the_public_api_and_rendering(name):
    below = sorted(module for module in GRAPH[name] if not module.startswith(CLI_MAY_IMPORT) and module != "wattless")
    assert below == [], f"{name} imports {below}; call a function of wattless.api instead"
