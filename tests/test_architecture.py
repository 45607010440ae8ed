"""The package's architecture, checked: no import circles, and shared code has public names.

Modules show the architecture: a module imports what it builds on at its top,
never a module that imports it back (a circle, or a function-local import that
dodges one), and what modules share is a public name of the module that owns
it, not a ``_private`` one reached across modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import skem

# Until the motif split and the kernels' public names land (this session's branches).
PENDING = pytest.mark.xfail(reason="motif modules and NegBin kernels not yet split", strict=False)

PACKAGE = Path(skem.__file__).parent

def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(module, node):
    """The absolute module a ``from`` import names (None for other packages)."""
    if node.level == 0:
        return node.module if (node.module or "").startswith("skem") else None
    package = module.split(".")
    is_package = _modules()[module].name == "__init__.py"
    base = package if is_package else package[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _skem_imports(module, path):
    """(imported module, names, at top level?) for each import of a skem module in ``path``."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target is not None:
                found.append((target, [alias.name for alias in node.names], id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("skem"):
                    found.append((alias.name, [], id(node) in top))
    return found


def _graph():
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for target, names, _ in _skem_imports(module, path):
            for name in names:  # `from . import _motif` imports a submodule
                if f"{target}.{name}" in modules:
                    edges.add(f"{target}.{name}")
            if target in modules and not all(f"{target}.{n}" in modules for n in names or ["?"]):
                edges.add(target)
        graph[module] = edges - {module}
    return graph


@PENDING
def test_no_import_circle():
    graph = _graph()
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import circles: {cycles}"


@PENDING
def test_no_function_local_import_of_skem_modules():
    # Such an import dodges a circle (or hides a dependency). The command line defers its
    # commands' modules for start-up time, which is the one accepted reason.
    local = [
        f"{module} imports {target}"
        for module, path in _modules().items() if not module.startswith("skem.cli")
        for target, _, at_top in _skem_imports(module, path) if not at_top
    ]
    assert not local, local


@PENDING
def test_no_private_name_crosses_modules():
    modules = _modules()
    crossing = [
        f"{module} imports {target}.{name}"
        for module, path in modules.items()
        for target, names, _ in _skem_imports(module, path)
        for name in names
        if name.startswith("_") and not name.startswith("__") and f"{target}.{name}" not in modules
    ]
    assert not crossing, crossing
