"""Imports point down: each package imports only the packages in the layers below it.

The order, lowest first, is the one each package's ``__init__`` docstring states. Lazy imports
inside functions count too: a handler that imports upward at run time is still an arrow up.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["sentinel", "schemas", "features", "drift", "training", "lifecycle", "stream_app",
          "dashboard", "cli"]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in a file; relative imports stay inside."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def arrows_up() -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    problems = []
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imports_of(path):
                target = module.split(".")[0]
                if target in rank and rank[target] > rank[package]:
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports {module} "
                                    f"({package} is below {target})")
    return problems


def test_every_import_points_down() -> None:
    assert arrows_up() == []


def test_every_package_states_its_layer() -> None:
    for i, package in enumerate(LAYERS, start=1):
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
        assert f"Layer {i} of {len(LAYERS)}" in doc, package


def test_the_check_sees_an_arrow_up(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom cli.main import main\n\ndef f():\n    import lifecycle\n")
    assert imports_of(module) == [(1, "os"), (2, "cli.main"), (5, "lifecycle")]
