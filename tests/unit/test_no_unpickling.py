"""No module outside tests unpickles: a pickle runs code when loaded (issue 18).

The same list is banned in ruff (``TID251`` in pyproject.toml); this scan also catches
``from pickle import loads`` aliases and attribute calls that ruff's resolver may miss.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sentinel", "schemas", "features", "stream_app", "training", "dashboard", "bench",
            "scripts", "deploy", "infra")
MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve",
           "jsonpickle"}
LOADERS = {"load", "loads", "Unpickler", "open"}  # shelve.open unpickles too
CALLS = {"read_pickle", "load_model", "load_pyfunc"}  # pandas / MLflow's pickle loaders


def _offences(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in MODULES:
            found += [f"from {node.module} import {a.name}" for a in node.names
                      if a.name in LOADERS or a.name == "*"]
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names
                      if a.name.split(".")[0] in {"cloudpickle", "dill", "jsonpickle"}]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in MODULES and node.attr in LOADERS):
            found.append(f"{node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in CALLS:
            owner = ast.unparse(node.value)
            if owner.endswith(("pd", "pandas", "pyfunc", "sklearn", "lightgbm")):
                found.append(f"{owner}.{node.attr}")
    return found


def test_scanner_finds_the_usual_spellings() -> None:
    source = ("import pickle, cloudpickle\nfrom joblib import load\npickle.loads(b'')\n"
              "mlflow.pyfunc.load_model('x')\npd.read_pickle('x')\n")
    assert len(_offences(ast.parse(source))) == 5


def test_no_module_outside_tests_unpickles() -> None:
    offences = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            for what in _offences(ast.parse(path.read_text(), str(path))):
                offences.append(f"{path.relative_to(ROOT)}: {what}")
    assert offences == []
