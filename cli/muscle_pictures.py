"""``python -m physface muscle-pictures --preset default --out out/muscles``: the skin with
each muscle alone at full activation (and the jaw open), coloured by how far each skin
point moved (white 0 → red ≥ 5 mm), front and three-quarter, plus a contact sheet; the lid
muscles also close up on the eyes (with the eyeballs, ``<preset>_lid_muscles.png``). The
check that every muscle moves the face the way that muscle moves a real face."""

from pathlib import Path

import numpy as np

from ..sim.data_paths import data_argument
from . import make_parser, output_folder, run_reporting_errors

FULL_SCALE_MM = 5.0
EYEBALL_COLOUR = (0.85, 0.84, 0.8)


def _heat(displacement_mm: np.ndarray) -> np.ndarray:
    """White (still) to red (≥ FULL_SCALE_MM) colours (V, 3) for displacements (V,) in mm."""
    t = np.clip(displacement_mm / FULL_SCALE_MM, 0.0, 1.0)[:, None]
    return ((1 - t) * np.array([0.92, 0.88, 0.85]) + t * np.array([0.85, 0.08, 0.05])).astype(
        np.float32
    )


def render_muscle_pictures(preset: str, out_dir: Path, data=None, muscles=None) -> list[Path]:
    """One picture per muscle (left side and midline; right mirrors left) and the jaw."""
    from ..blender.snapshot import SnapshotMesh, contact_sheet, render_views
    from ..nets.evaluate import ict_close_ups
    from ..sim.anatomy import JawPose
    from ..sim.controls import Controls
    from ..sim.face_model import REGIONS, load_face_model
    from ..sim.playback import HeadPlayer
    from ..sim.rig import load_rig
    from ..sim.tissue import OUTER_SKIN_REGIONS

    model = load_face_model(data)
    rig = load_rig(preset, data, with_hr=False)
    player = HeadPlayer(rig, tolerance=1e-4, max_iterations=300)
    rest = rig.ict_rest_positions
    skin = np.concatenate([model.region(r) for r in OUTER_SKIN_REGIONS])
    triangles = model.triangles(skin)
    names = muscles or [n for n in rig.muscle_names if not n.endswith("_R")]
    lid_muscles = set() if rig.lids is None else {rig.muscle_names[m] for m in rig.lids.lid_muscles}
    eyeball_parts = ("eyeball_left", "eyeball_right")
    eye_triangles = ict_close_ups(model, rest, eyeball_parts)["eyes"]
    eyeballs = np.concatenate([np.arange(*REGIONS[part]) for part in eyeball_parts])
    cases = [(name, Controls(activations={name: 1.0})) for name in names]
    cases.append(("jaw_open_20deg", Controls(jaw=JawPose(opening_deg=20.0))))
    paths, labels, lid_paths, lid_labels = [], [], [], []
    for name, controls in cases:
        player.reset()  # each muscle alone, from rest
        positions = player.play(0, controls).positions.copy()
        moved = 10.0 * np.linalg.norm(positions - rest, axis=1)
        colours = _heat(moved)
        mesh = SnapshotMesh(positions, triangles, vertex_colors=colours)
        views = render_views([mesh], out_dir, name, ("front", "three_quarter"),
                             resolution=(420, 420), engine="BLENDER_WORKBENCH")  # fmt: skip
        paths += views
        labels += [f"{name} max {moved[skin].max():.1f} mm", name]
        if name in lid_muscles:
            colours[eyeballs] = EYEBALL_COLOUR
            mesh = SnapshotMesh(positions, eye_triangles, vertex_colors=colours)
            lid_paths += render_views([mesh], out_dir, f"{name}_eyes", ("front",), (640, 420),
                                      engine="BLENDER_WORKBENCH")  # fmt: skip
            lid_labels.append(f"{name} max {moved[skin].max():.1f} mm")
    sheet = contact_sheet(paths, out_dir / f"{preset}_muscles_alone.png", 6, labels)
    if lid_paths:
        lids = contact_sheet(lid_paths, out_dir / f"{preset}_lid_muscles.png", 2, lid_labels)
        return [*paths, *lid_paths, lids, sheet]
    return [*paths, sheet]


def main(argv: list[str]) -> int:
    parser = make_parser("physface muscle-pictures", __doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out", default="out/muscles")
    parser.add_argument(
        "--data", type=data_argument, help="data folder (default: PHYSFACE_DATA or ../shared/data)"
    )
    parser.add_argument("--muscle", action="append", help="only these muscles (repeatable)")
    args = parser.parse_args(argv)

    def body() -> int:
        out = output_folder(args.out)
        paths = render_muscle_pictures(args.preset, out, args.data, args.muscle)
        print(paths[-1])
        return 0

    return run_reporting_errors(body)
