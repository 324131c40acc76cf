"""The import graph of the package has no cycles.

Every module of ``kdtui/`` is parsed (not imported) and every import of a kdtui module is
an edge: at module level, inside functions, and under ``if TYPE_CHECKING``, since each of
them ties the two modules together just the same. ``import kdtui.a`` and ``from kdtui.a
import name`` are edges to the package ``kdtui.a`` (its ``__init__``), ``from kdtui.a
import module`` to that submodule. The implicit import of a package's ``__init__`` when
one of its submodules is imported is not an edge: a package that registers its submodules
would otherwise always be a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kdtui"

# Cycles outside the config/data/registry core that are still to be removed: each entry is
# the set of modules of one strongly connected component. A cycle found must lie within
# one of these; remove an entry (and empty this tuple) as the cycles go.
KNOWN_CYCLES_TO_REMOVE: tuple[frozenset[str], ...] = ()

# Never allowed in a cycle, whatever the list above says.
CORE = ("kdtui.config", "kdtui.schema", "kdtui.overrides", "kdtui.registry", "kdtui.presets",
        "kdtui.errors", "kdtui.data", "kdtui.engine.optim")


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    modules = module_files()

    def known(name: str) -> str | None:
        while name and name not in modules:  # kdtui.a.b.attr -> kdtui.a.b
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                found = known(target) if target.startswith("kdtui") else None
                if found and found != name:
                    graph[name].add(found)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One shortest cycle through the component's first module (for the message)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & component):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return [start]


def describe(graph: dict[str, set[str]], components: list[set[str]]) -> str:
    return "\n".join(f"  {sorted(c)}\n    e.g. {' -> '.join(a_cycle(graph, c))}" for c in components)


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "kdtui.registry" in graph["kdtui.data"]                  # module level
    assert "kdtui.data.cifar" in graph["kdtui.data"]                # inside a function
    assert "kdtui.data.base" in graph["kdtui.data"]                 # under TYPE_CHECKING
    assert "kdtui.losses" in graph["kdtui.engine.objective"]       # from the package __init__
    assert "kdtui.models.wrn" in graph["kdtui.models"]              # from pkg import submodule
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles():
    graph = import_graph()
    components = strongly_connected(graph)
    core = [c for c in components if any(m == p or m.startswith(p + ".") for m in c for p in CORE)]
    assert not core, "import cycles through the config/data/registry core:\n" + describe(graph, core)
    unknown = [c for c in components if not any(c <= known for known in KNOWN_CYCLES_TO_REMOVE)]
    assert not unknown, "new import cycles:\n" + describe(graph, unknown)


def test_engine_and_store_import_nothing_of_the_app():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith(("kdtui.engine", "kdtui.store", "kdtui.events", "kdtui.data",
                            "kdtui.losses", "kdtui.models", "kdtui.config")):
            assert not [t for t in targets if t.startswith("kdtui.tui")], name


def test_headless_commands_do_not_load_the_app(tmp_path):
    """`kdtui run --headless` and the `runs` listings work without Textual's app code."""
    import subprocess
    import sys

    code = ("import sys\nfrom kdtui.cli import app\n"
            "for args in (['runs', 'ls'], ['runs', 'ls', '--format', 'json'], ['presets'],\n"
            "             ['run', 'nope.yaml', '--headless']):\n"
            "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('kdtui.tui')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**__import__("os").environ, "KDTUI_RUNS_DIR": str(tmp_path / "runs")})
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_no_module_is_a_god_file():
    too_long = {name: n for name, path in module_files().items()
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert too_long == {}
