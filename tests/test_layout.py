"""The package's layout: no import cycles, a light ``import daskfarm``, light worker code."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import daskfarm
from tests.conftest import DEADLINE

PACKAGE = pathlib.Path(daskfarm.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: pathlib.Path) -> set[str]:
    """daskfarm modules imported at module level (not in functions, not for type checking)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - sub.level + 1]
                                    + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in sub.names)
    return {m for m in found if m.split(".")[0] == "daskfarm"}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _top_level_imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_among_module_level_imports():
    graph = _graph()
    assert "daskfarm.client.feeder" in graph["daskfarm.client.launch"]  # the parser sees edges
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _loaded_after(statement: str, libraries=("bokeh", "tqdm", "zict", "pandas")) -> list[str]:
    code = (f"{statement}; import sys; print(sorted(m for m in sys.modules "
            f"if m.split('.')[0] in {tuple(libraries)!r} "
            "or m.startswith(('daskfarm.compat', 'daskfarm.store', 'daskfarm.client', "
            "'daskfarm.dashboard'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=2 * DEADLINE, check=True).stdout
    return ast.literal_eval(out.strip())


def test_import_daskfarm_is_light():
    assert _loaded_after("import daskfarm") == []


def test_worker_code_loads_nothing_of_the_client_store_or_dashboard():
    # (distributed's worker itself loads zict)
    assert _loaded_after("import daskfarm.worker.execute, daskfarm.scheduler.plugin",
                         ("bokeh", "tqdm", "pandas")) == []


def test_public_names_load_on_first_use():
    assert _loaded_after("from daskfarm import report, FarmError, Farm") != []


def test_a_farm_without_a_dashboard_never_imports_bokeh():
    # the farm page lives on the dashboard: without one, Bokeh's import (half a second of
    # the Farm's start) is skipped
    statement = ("from daskfarm import Farm; farm = Farm(n_workers=1, processes=False, "
                 "dashboard=False); assert farm.panel_link is None; farm.close()")
    loaded = _loaded_after(statement, ("bokeh",))
    assert [m for m in loaded if m.split(".")[0] == "bokeh"] == []
    assert "daskfarm.client.feeder" in loaded  # the statement did run a Farm
