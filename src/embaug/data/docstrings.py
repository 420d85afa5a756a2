"""The offline demo corpus: docstrings of installed Python packages, labelled by package.

Docstrings are read from source files with :mod:`ast`; no package is imported (imports run
code: numpy's f2py parses ``sys.argv``, sympy prints, optional back-ends fail).
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..errors import EmbaugError

SKIPPED_FOLDERS = {"tests", "test", "testing", "_vendor", "vendor", "vendored", "externals", "_lib"}
DOCUMENTED_NODES = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def package_root(package: str) -> Path:
    """The source folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbaugError(f"demo corpus: package '{package}' is not installed (key datasets.<name>.packages)")
    return Path(next(iter(spec.submodule_search_locations)))


def public_docstrings(path: Path) -> Iterator[str]:
    """Docstrings of the public classes and functions (no leading '_') defined in one file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, DOCUMENTED_NODES) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def source_files(root: Path) -> Iterator[Path]:
    """Python files under ``root``, skipping test and vendored folders."""
    for path in sorted(root.rglob("*.py")):
        if not SKIPPED_FOLDERS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def docstring_corpus(packages: list[str]) -> pd.DataFrame:
    """One row per distinct public docstring: ``text``, ``label`` (the top-level package)."""
    if not packages:
        raise EmbaugError("demo corpus: no packages listed (key datasets.<name>.packages)")
    rows: dict[str, str] = {}
    for package in tqdm(packages, desc="docstrings"):
        for path in source_files(package_root(package)):
            for doc in public_docstrings(path):
                rows.setdefault(doc, package)
    return pd.DataFrame({"text": list(rows), "label": list(rows.values())})
