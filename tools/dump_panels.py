"""Dump the PhysFace sidebar as indented text (headless Blender draws no UI to screenshot).

    .venv/bin/python tools/dump_panels.py [--preset tiny]

Adds a head, then calls each PhysFace panel's ``draw`` with a recording layout that writes
every row, label, property (with its current value and unit) and button as a line.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent


class RecordingLayout:
    """Stands in for bpy's UILayout: records what a panel's draw() puts on screen."""

    def __init__(self, lines: list[str], depth: int = 0):
        self.lines, self.depth = lines, depth
        self.alert = False

    def _child(self, kind: str):
        self.lines.append("  " * self.depth + f"[{kind}]")
        return RecordingLayout(self.lines, self.depth + 1)

    def row(self, **_):
        return self._child("row")

    def column(self, **_):
        return self._child("column")

    def box(self):
        return self._child("box")

    def grid_flow(self, **kw):
        return self._child(f"grid {kw.get('columns', '')} columns")

    def label(self, text="", icon=None):
        self.lines.append("  " * self.depth + f"label: {text}")

    def prop(self, data, name, text=None, **_):
        rna = data.bl_rna.properties[name]
        value = getattr(data, name)
        if isinstance(value, float):
            value = f"{value:.3g}"
        unit = {"FACTOR": " (0–1)"}.get(getattr(rna, "subtype", ""), "")
        shown = rna.name if text is None else text
        self.lines.append("  " * self.depth + f"{shown}: {value}{unit}  — {rna.description}")

    def operator(self, idname, text=None, icon=None):
        self.lines.append("  " * self.depth + f"button: {text or idname}  ({idname})")
        return SimpleNamespace()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    os.environ.setdefault("PHYSFACE_CACHE", str(REPO / ".cache"))
    home = tempfile.mkdtemp(prefix="physface-panels-")
    os.environ["HOME"] = home
    os.environ["BLENDER_USER_RESOURCES"] = f"{home}/blender"
    import bpy

    import physface
    from physface.panels import sidebar

    physface.register()
    bpy.ops.physface.add_head(rig_preset=args.preset)
    context = bpy.context
    for cls in sidebar.classes:
        lines: list[str] = []
        if hasattr(cls, "poll") and not cls.poll(context):
            continue
        cls.draw(SimpleNamespace(layout=RecordingLayout(lines)), context)
        parent = f" (in {cls.bl_parent_id})" if getattr(cls, "bl_parent_id", "") else ""
        print(f"== {cls.bl_label}{parent}")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
