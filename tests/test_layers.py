"""The layer map is true: imports among avsclient modules only go down, and never in a circle.

The map is LAYERS below, top to bottom (docs: the README's Architecture section). A module may
import modules of its own layer or of any layer below it. Imports are read from the source
with `ast`, not from a running interpreter, so imports under `if TYPE_CHECKING:` and imports
inside functions count the same as module-level ones: each is a dependency a reader and a type
checker follow, and a cycle through them is still a cycle.

KNOWN_VIOLATIONS lists the imports that break the map today, each an (importer, imported) pair.
It may only shrink: an entry that no longer breaks the map makes the test fail, so that it is
taken off the list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

PACKAGE = "avsclient"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Top to bottom. Each module belongs to the layer of the longest name below that is the module
# itself or one of its packages ("avsclient.audio" covers avsclient.audio.sources, while
# "avsclient.audio.mixer" puts the mixer higher). The root package `avsclient` is listed on its
# own and covers only its `__init__` (it re-exports the client's public names).
LAYERS: list[tuple[str, list[str]]] = [
    ("applications", [
        "avsclient.cli",                  # talk, doctor, login, simulate
        "avsclient.__main__",             # python -m avsclient
        "avsclient.simulator.__main__",   # python -m avsclient.simulator
    ]),
    ("client", [
        "avsclient",                      # the root __init__ only
        "avsclient.client",
    ]),
    ("agents", [
        "avsclient.agents",
    ]),
    ("services", [
        "avsclient.activity",
        "avsclient.dialog",
        "avsclient.directives",
        "avsclient.focus",
        "avsclient.outbox",
        "avsclient.store",
    ]),
    ("simulator", [                       # a side layer: see SIDE_LAYERS
        "avsclient.simulator",
    ]),
    ("avs", [                             # the AVS session
        "avsclient.avs",
    ]),
    ("http2", [                           # pure HTTP/2 transport, knows nothing of AVS
        "avsclient.http2",
    ]),
    ("foundation", [
        "avsclient._fsm",
        "avsclient._httpx",
        "avsclient._lazy",
        "avsclient._redaction",
        "avsclient._resource",
        "avsclient._retry",
        "avsclient._tasks",
        "avsclient.attachments",
        "avsclient.audio",
        "avsclient.auth",
        "avsclient.config",
        "avsclient.environment",
        "avsclient.exceptions",
        "avsclient.gateway",
        "avsclient.messages",
        "avsclient.multipart",
    ]),
]

# Layers that only some layers above them may import (besides the layer itself): nothing in
# avsclient uses the simulator except the command line (and the pytest plugin, which is part
# of the simulator).
SIDE_LAYERS: dict[str, set[str]] = {
    "simulator": {"applications"},
}

# Imports that break the map today (none: the list only shrinks, and is empty).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


# -- reading the imports --------------------------------------------------------------------


def module_name(path: Path, root: Path = ROOT) -> str:
    """avsclient/audio/sources.py -> avsclient.audio.sources; a package's __init__ -> its name."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package, by name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports_of(
    name: str, source: str, modules: Iterable[str], *, is_package: bool = False
) -> Iterator[str]:
    """The package's modules that the module `name` imports, anywhere in its source.

    `from X import Y` is an import of X.Y when that is a module, else of X. Relative imports
    are resolved against the module's package.
    """
    known = set(modules)

    def closest(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE and (found := closest(alias.name)):
                    yield found
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}"
                elif found := closest(base):
                    yield found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the package's modules it imports (itself excluded)."""
    modules = find_modules(root)
    return {
        name: {
            target
            for target in imports_of(
                name, path.read_text(), modules, is_package=path.name == "__init__.py"
            )
            if target != name
        }
        for name, path in modules.items()
    }


# -- judging them ---------------------------------------------------------------------------


def layer_of(module: str) -> str | None:
    """The layer of `module` by the longest matching name in LAYERS, or None."""
    best: tuple[int, str] | None = None
    for layer, names in LAYERS:
        for prefix in names:
            covers = module == prefix or (
                prefix != PACKAGE and module.startswith(prefix + ".")
            )
            if covers and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


RANK = {layer: rank for rank, (layer, _) in enumerate(LAYERS)}  # 0 is the top


def breaks_layers(importer: str, imported: str) -> str | None:
    """Why importer -> imported breaks the layer order, or None when it does not."""
    upper, lower = layer_of(importer), layer_of(imported)
    if upper is None or lower is None:
        return None  # test_every_module_has_a_layer reports it
    if RANK[lower] < RANK[upper]:
        return f"{importer} ({upper}) imports {imported} ({lower}), a higher layer"
    allowed = SIDE_LAYERS.get(lower)
    if allowed is not None and upper != lower and upper not in allowed:
        return f"{importer} ({upper}) imports {imported} ({lower}), which only {allowed} may"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def without(graph: dict[str, set[str]], edges: set[tuple[str, str]]) -> dict[str, set[str]]:
    return {a: {b for b in targets if (a, b) not in edges} for a, targets in graph.items()}


GRAPH = import_graph()


# -- the tests ------------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    """Each module of the package is placed in LAYERS (add new modules to the map)."""
    assert [m for m in sorted(GRAPH) if layer_of(m) is None] == []


def test_imports_only_go_down() -> None:
    """No module imports a higher layer, or a side layer it may not use."""
    broken = [
        reason
        for importer, targets in sorted(GRAPH.items())
        for imported in sorted(targets)
        if (importer, imported) not in KNOWN_VIOLATIONS
        and (reason := breaks_layers(importer, imported))
    ]
    assert broken == []


def test_no_import_cycles() -> None:
    """No circle of imports among the package's modules, TYPE_CHECKING imports included."""
    assert cycles(without(GRAPH, KNOWN_VIOLATIONS)) == []


def test_known_violations_only_shrink() -> None:
    """Every entry of KNOWN_VIOLATIONS is still an import that breaks the map."""
    in_cycle = {frozenset(c) for c in cycles(GRAPH)}
    stale = []
    for importer, imported in sorted(KNOWN_VIOLATIONS):
        exists = imported in GRAPH.get(importer, set())
        cyclic = any({importer, imported} <= c for c in in_cycle)
        if not exists or not (breaks_layers(importer, imported) or cyclic):
            stale.append((importer, imported))
    assert stale == [], "no longer a violation: remove from KNOWN_VIOLATIONS"


def test_layer_table_names_each_prefix_once() -> None:
    """A name sits in one layer only, so the map reads one way."""
    names = [name for _, layer_names in LAYERS for name in layer_names]
    assert len(names) == len(set(names))
    assert set(SIDE_LAYERS) <= set(RANK)
    assert all(allowed <= set(RANK) for allowed in SIDE_LAYERS.values())


# -- the reader and the judge on small examples ---------------------------------------------


MODULES = ["avsclient", "avsclient.a", "avsclient.a.x", "avsclient.a.y", "avsclient.b"]


@pytest.mark.parametrize(
    ("name", "is_package", "source", "expected"),
    [
        ("avsclient.a.x", False, "from .y import Y", ["avsclient.a.y"]),
        ("avsclient.a", True, "from .x import X", ["avsclient.a.x"]),
        ("avsclient.a.x", False, "from . import y", ["avsclient.a.y"]),
        ("avsclient.a.x", False, "from .. import b", ["avsclient.b"]),
        ("avsclient.b", False, "from avsclient.a import X", ["avsclient.a"]),
        ("avsclient.b", False, "import avsclient.a.x.inner", ["avsclient.a.x"]),
        ("avsclient.b", False, "import os\nfrom h2 import events", []),
        (
            "avsclient.b",
            False,
            "if TYPE_CHECKING:\n    from avsclient.a.y import Y\n",
            ["avsclient.a.y"],
        ),
        ("avsclient.b", False, "def f():\n    from avsclient.a import x\n", ["avsclient.a.x"]),
    ],
)
def test_imports_are_read_from_the_source(
    name: str, is_package: bool, source: str, expected: list[str]
) -> None:
    """Relative, nested, TYPE_CHECKING and function-level imports are all found."""
    assert sorted(imports_of(name, source, MODULES, is_package=is_package)) == expected


def test_cycles_are_found() -> None:
    """A circle of any length is reported once, and a chain is not a circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_an_upward_import_is_reported() -> None:
    """A foundation module importing the client, or agents importing the simulator, is reported."""
    assert breaks_layers("avsclient.config", "avsclient.client")
    assert breaks_layers("avsclient.agents.base", "avsclient.simulator.server")
    assert breaks_layers("avsclient.cli.simulate", "avsclient.simulator.server") is None
    assert breaks_layers("avsclient.client", "avsclient.messages") is None
