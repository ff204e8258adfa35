"""Imports point one way: panels, operators -> blender -> (sim, nets); sim/nets never bpy."""

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BPY_MODULES = {"bpy", "blf", "imbuf", "mathutils", "gpu", "bmesh"}
FORBIDDEN = {  # layer -> top-level names it must never import (lazily or not)
    "sim": {"blender", "operators", "panels", "cli"} | BPY_MODULES,
    "nets": {"blender", "operators", "panels", "cli"} | BPY_MODULES,
    "blender": {"operators", "panels", "cli"},
    "operators": {"panels", "cli"},
    "panels": {"operators", "cli"},
}


def imported_names(path: Path) -> set[str]:
    """First components of every module a file imports, relative ones resolved to the
    package's top-level folder (``..operators.bake`` in blender/ -> ``operators``)."""
    package = list(path.relative_to(REPO_ROOT).parent.parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module.split(".")[0])
                continue
            base = package[: len(package) - (node.level - 1)]
            parts = base + (node.module.split(".") if node.module else [])
            if parts:
                names.add(parts[0])
            else:  # "from .. import x": x are top-level modules of the package
                names |= {alias.name for alias in node.names}
    return names


def test_the_layers_exist_as_designed():
    assert {p.stem for p in (REPO_ROOT / "panels").glob("*.py")} == {"__init__", "sidebar"}
    for path in (REPO_ROOT / "operators").glob("*.py"):
        if path.stem != "__init__":
            assert "bpy.types.Operator" in path.read_text(), f"{path.name} defines no operator"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_import_runs_against_the_layers(layer):
    wrong = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_names(path) & FORBIDDEN[layer])
        for path in sorted((REPO_ROOT / layer).rglob("*.py"))
    }
    assert {path: names for path, names in wrong.items() if names} == {}
