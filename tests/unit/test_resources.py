"""The package reads its data files only through ksi_multi.resources, and only the ones it lists there."""

import ast
from pathlib import Path

import pytest

from ksi_multi import resources

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("ksi_multi", "netplugins") for p in (ROOT / d).rglob("*.py"))
# Example scripts users run from where `ksi-multi manifest NAME --path` shows them: data, not modules.
MODULES = [p for p in SOURCES if "manifests" not in p.relative_to(ROOT).parts]


def _constants(tree: ast.Module) -> dict[str, str]:
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


def _resource_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    consts = _constants(tree)
    names = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "path"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "resources"):
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                names.append(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in consts:
                names.append(consts[arg.id])
            else:
                names.append(f"<not a constant in {path.name}:{node.lineno}>")
    return names


def test_every_resource_the_code_asks_for_is_registered_and_exists():
    asked = {name for p in SOURCES for name in _resource_names(p)}
    assert {"templates/ksi-multi.sbatch", "image/k8s", "image/node-files", "helpers"} <= asked
    assert {n for n in asked if not resources.registered(n)} == set()
    assert all(resources.path(n).exists() for n in asked)


def test_no_module_finds_files_next_to_its_own_source():
    """Paths built from __file__ work in a checkout and break in other installs: importlib.resources instead."""
    offenders = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in MODULES for n in ast.walk(ast.parse(p.read_text()))
                 if isinstance(n, ast.Name) and n.id == "__file__"]
    assert offenders == []


def test_unregistered_names_are_refused():
    with pytest.raises(ValueError, match="not in ksi_multi.resources.DATA"):
        resources.path("image/elsewhere")
