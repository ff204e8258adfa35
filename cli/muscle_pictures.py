"""``python -m physface muscle-pictures --preset default --out out/muscles``: the skin with
each muscle alone at full activation (and the jaw open), coloured by how far each skin
point moved (white 0 → red ≥ 5 mm), front and three-quarter, plus a contact sheet. The
check that every muscle moves the face the way that muscle moves a real face."""

import argparse
from pathlib import Path

import numpy as np

from . import run_reporting_errors

FULL_SCALE_MM = 5.0


def _heat(displacement_mm: np.ndarray) -> np.ndarray:
    """White (still) to red (≥ FULL_SCALE_MM) colours (V, 3) for displacements (V,) in mm."""
    t = np.clip(displacement_mm / FULL_SCALE_MM, 0.0, 1.0)[:, None]
    return ((1 - t) * np.array([0.92, 0.88, 0.85]) + t * np.array([0.85, 0.08, 0.05])).astype(
        np.float32
    )


def render_muscle_pictures(preset: str, out_dir: Path, data=None, muscles=None) -> list[Path]:
    """One picture per muscle (left side and midline; right mirrors left) and the jaw."""
    from ..blender.snapshot import SnapshotMesh, contact_sheet, render_views
    from ..sim.anatomy import JawPose
    from ..sim.controls import Controls
    from ..sim.face_model import load_face_model
    from ..sim.rig import load_rig
    from ..sim.simulator import Simulator
    from ..sim.tissue import OUTER_SKIN_REGIONS

    model = load_face_model(data)
    rig = load_rig(preset, data, with_hr=False)
    simulator = Simulator(rig, "lr", tolerance=1e-4, max_iterations=300, face_model=model)
    skin = np.concatenate([model.region(r) for r in OUTER_SKIN_REGIONS])
    triangles = model.triangles(skin)
    names = muscles or [n for n in rig.muscle_names if not n.endswith("_R")]
    cases = [(name, Controls(activations={name: 1.0})) for name in names]
    cases.append(("jaw_open_20deg", Controls(jaw=JawPose(opening_deg=20.0))))
    paths, labels = [], []
    for name, controls in cases:
        simulator.reset()
        result = simulator.step(controls)
        positions = simulator.ict_positions(result)
        moved = 10.0 * np.linalg.norm(positions - model.neutral, axis=1)
        mesh = SnapshotMesh(positions, triangles, vertex_colors=_heat(moved))
        views = render_views([mesh], out_dir, name, ("front", "three_quarter"),
                             resolution=(420, 420), engine="BLENDER_WORKBENCH")  # fmt: skip
        paths += views
        labels += [f"{name} max {moved[skin].max():.1f} mm", name]
    sheet = contact_sheet(paths, out_dir / f"{preset}_muscles_alone.png", 6, labels)
    return [*paths, sheet]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="physface muscle-pictures", description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out", default="out/muscles")
    parser.add_argument("--data", help="data folder (default: PHYSFACE_DATA or ../shared/data)")
    parser.add_argument("--muscle", action="append", help="only these muscles (repeatable)")
    args = parser.parse_args(argv)

    def body() -> int:
        paths = render_muscle_pictures(args.preset, Path(args.out), args.data, args.muscle)
        print(paths[-1])
        return 0

    return run_reporting_errors(body)
