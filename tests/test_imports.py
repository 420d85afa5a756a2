"""The package's import structure: no module imports itself back through others, and the data layer
imports nothing of the stages built on it."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import embaug

PACKAGE = Path(embaug.__file__).parent


def module_name(path: Path) -> str:
    """``embaug.data.sources`` for ``.../embaug/data/sources.py``, ``embaug.data`` for its ``__init__``."""
    parts = ("embaug", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The embaug modules one file imports, at module level or inside functions alike."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            levels = package.split(".")
            base = levels[: len(levels) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            # ``from . import x`` imports module ``x`` where it is one, else a name of the package
            found.update(
                f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                for alias in node.names
            )
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    """Each embaug module and the embaug modules it imports."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported(path, modules) for path in paths}


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (its modules, the first repeated at the end), or ``[]``."""
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(error.args[1])
    return []


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    graph = import_graph()
    assert "embaug.data.split" in graph["embaug.data.sources"]  # from .split import ...
    assert "embaug.data.split" in graph["embaug.evaluate.scores"]  # from ..data.split import ...
    assert "embaug.data.split" in graph["embaug.config_checks"]  # inside a function


def test_a_planted_cycle_is_found():
    graph = import_graph()
    graph["embaug.data.split"] = graph["embaug.data.split"] | {"embaug.data.sources"}
    assert set(cycle(graph)) == {"embaug.data.split", "embaug.data.sources"}


def test_no_import_cycle():
    assert cycle(import_graph()) == []


def test_the_data_layer_imports_no_stage_built_on_it():
    upward = {
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith("embaug.data.")
        for target in targets
        if target.startswith(("embaug.evaluate", "embaug.report", "embaug.train", "embaug.cli"))
    }
    assert upward == set()
