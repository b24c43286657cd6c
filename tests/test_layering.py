"""The import graph of ``src/distbench`` holds the architecture: the API above the orchestrator,
the orchestrator above the backends, the backends above what runs in a worker, and no import
circle anywhere.

Every ``import`` counts, module-level or inside a function (a lazy import hides a circle from
Python, not from a reader); only ``if TYPE_CHECKING:`` blocks are left out, because nothing runs
them. ``from package import module`` depends on the module, not on the package's ``__init__``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Higher layers may import lower ones, never the reverse. Single modules at the top of the
# package (errors, settings, timefmt, ...) are shared by everyone: layer 0.
LAYERS: dict[str, int] = {
    "store": 1,
    "client": 1,
    "worker": 2,
    "benchmarks": 2,
    "backends": 3,
    "orchestrator": 4,
    "collector": 4,
    "api": 5,
    "dashboard": 5,
    "app": 6,
    "cli": 7,
    "__main__": 8,
}
# Packages on one layer that may import each other: a task uses the worker's session, and the
# worker runs the task (module by module without a circle, checked below).
SAME_LAYER_PAIRS = {("worker", "benchmarks"), ("benchmarks", "worker")}


def module_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / "distbench").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(inner) for inner in ast.walk(node))
    return hidden


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> set[str]:
    """The distbench modules ``module`` imports."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    hidden = _type_checking_nodes(tree)
    named: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node)
            submodules = {f"{source}.{alias.name}" for alias in node.names} & MODULES.keys()
            named.update(submodules)
            if len(submodules) < len(node.names):
                named.add(source)
    return {name for name in named if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def layer_name(module: str) -> str:
    """``distbench.api.runs`` -> ``api``; a top-level module is its own name."""
    return module.split(".")[1] if "." in module else "<package>"


def circles() -> Iterator[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    counter = itertools.count()

    def visit(module: str) -> Iterator[list[str]]:
        index[module] = low[module] = next(counter)
        stack.append(module)
        for imported in sorted(GRAPH[module]):
            if imported not in index:
                yield from visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                yield sorted(component)

    for module in sorted(GRAPH):
        if module not in index:
            yield from visit(module)


def test_the_graph_is_read_from_every_module() -> None:
    # The checks below are only as good as the graph: it must see the known edges.
    assert len(MODULES) > 80
    assert "distbench.orchestrator.tokens" in GRAPH["distbench.api.deps"]
    assert "distbench.backends.base" in GRAPH["distbench.orchestrator.core"]
    assert "distbench.client.http_client" in GRAPH["distbench.client"]


def test_no_module_imports_itself_back() -> None:
    assert list(circles()) == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    upward = []
    for module, imported in sorted(GRAPH.items()):
        here = layer_name(module)
        for target in sorted(imported):
            there = layer_name(target)
            if here == there or there not in LAYERS or (here, there) in SAME_LAYER_PAIRS:
                continue
            if here not in LAYERS or LAYERS[there] >= LAYERS[here]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_package_has_a_layer() -> None:
    # A new package must be placed in LAYERS, or the test above cannot judge its imports.
    packages = {layer_name(m) for m in MODULES if MODULES[m].name == "__init__.py" and "." in m}
    assert packages - LAYERS.keys() == set()


def test_the_client_needs_nothing_from_the_server() -> None:
    # `pip install distbench` to script a remote server must not pull the server's layers in.
    server = {"store", "worker", "benchmarks", "backends", "orchestrator", "api", "app"}
    reached = {
        target
        for module, imported in GRAPH.items()
        if layer_name(module) == "client"
        for target in imported
        if layer_name(target) in server
    }
    assert reached == set()
