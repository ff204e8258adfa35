"""Helpers the Blender tests share: reading a head's positions, loading a tools/ script."""

import importlib.util
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def shape_key_positions(obj, name: str = "PhysFace") -> np.ndarray:
    """(V, 3) float32 of one shape key of a mesh object."""
    block = obj.data.shape_keys.key_blocks[name]
    out = np.empty(len(block.data) * 3, dtype=np.float32)
    block.data.foreach_get("co", out)
    return out.reshape(-1, 3)


def evaluated_positions(bpy, obj) -> np.ndarray:
    """(V, 3) float32 of the object's evaluated mesh (modifiers and shape keys applied)."""
    mesh = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    out = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", out)
    return out.reshape(-1, 3)


def load_tool(name: str):
    """A script of tools/ (``build_extension``, ``dump_panels``) imported as a module."""
    spec = importlib.util.spec_from_file_location(
        f"physface_{name}", REPO_ROOT / "tools" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
