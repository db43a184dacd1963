"""The import graph of the `builders` package, read from the source (imports inside functions count too).

The build fingerprint hashes the modules a distribution's builder reaches through it, and
tests/test_architecture.py keeps the graph free of cycles and of imports from a higher layer.
`TYPE_CHECKING` blocks are left out: they only name types.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name


def module_files(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Module name -> file for every module of the package (a package is named after its folder)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    package = module if is_package else module.rpartition(".")[0]
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield from (f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def _owner(name: str, modules: Iterable[str]) -> str | None:
    """The longest known module `name` falls in (an imported function belongs to its module)."""
    known = set(modules)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@cache
def import_graph(root: Path = PACKAGE_DIR) -> dict[str, frozenset[str]]:
    """Module -> the package modules it imports."""
    files = module_files(root)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {_owner(name, files) for name in _imported_names(tree, module, path.name == "__init__.py")
                   if name.split(".")[0] == PACKAGE}
        targets.discard(None)
        targets.discard(module)
        graph[module] = frozenset(t for t in targets if t is not None)
    return graph


def reachable(start: Iterable[str], graph: dict[str, frozenset[str]] | None = None) -> set[str]:
    """Every module the `start` modules import, directly or not, with the packages containing them (whose
    `__init__` runs first), and the start modules themselves."""
    graph = import_graph() if graph is None else graph
    seen: set[str] = set()
    todo = [m for m in start if m in graph]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [module.rsplit(".", depth)[0] for depth in range(1, module.count(".") + 1)]
        todo.extend(m for m in (*graph[module], *parents) if m in graph)
    return seen


def cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
