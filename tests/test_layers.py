"""The layers of DESIGN.md, checked on the source: ``panels``, ``operators`` →
``blender`` → (``sim``, ``nets``); ``sim`` and ``nets`` never import bpy; the dataset's
format module and the metrics stay numpy-only for training to import.

Reads every module's imports with ``ast`` (top-level and inside functions alike), so a
lazy import that climbs a layer fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"panels": 3, "operators": 3, "blender": 2, "sim": 1, "nets": 1}
NUMPY_ONLY = ("sim/dataset_format.py", "sim/metrics.py", "sim/images.py", "sim/tolerances.py")


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute-ish module name, line) of every import in a package module."""
    package = path.relative_to(ROOT).parent.parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join((*base, node.module or ""))
                found.append((name.strip("."), node.lineno))
                if not node.module:  # from . import x
                    found += [(".".join((*base, a.name)), node.lineno) for a in node.names]
            else:
                found.append((node.module, node.lineno))
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_no_import_climbs_a_layer(folder):
    own = LAYERS[folder]
    bad = []
    for path in _modules(folder):
        for name, line in _imports(path):
            top = name.split(".")[0]
            if top in LAYERS and LAYERS[top] > own:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
            if top in LAYERS and top != folder and LAYERS[top] == own and own == 3:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} (a sibling layer)")
            if own == 1 and top in ("bpy", "mathutils", "bmesh"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", NUMPY_ONLY)
def test_numpy_only_modules_import_no_solver_or_blender(module):
    path = ROOT / module
    if not path.exists():
        pytest.fail(f"{module} is missing")
    heavy = ("warp", "scipy", "torch", "bpy")
    bad = [f"{module}:{line} imports {name}" for name, line in _imports(path)
           if name.split(".")[0] in heavy or name.startswith("sim.simulator")]  # fmt: skip
    assert not bad, "\n".join(bad)
