"""The Blender side's folders hold what DESIGN.md's layout says (imports: test_layers.py)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_panels_hold_the_sidebar_alone():
    assert {p.stem for p in (REPO_ROOT / "panels").glob("*.py")} == {"__init__", "sidebar"}


def test_every_operators_module_defines_an_operator():
    modules = [p for p in (REPO_ROOT / "operators").glob("*.py") if p.stem != "__init__"]
    assert modules
    for path in modules:
        assert "(bpy.types.Operator)" in path.read_text(), f"{path.name} defines no operator"
