"""``python -m physface rig-pictures --preset tiny --out out/rig``: PNGs of the material
space — skin, bones, muscles coloured by name and the LR lattice, front and side — and a
contact sheet of them all."""

from pathlib import Path

import numpy as np

from ..sim.data_paths import data_argument
from . import make_parser, output_folder, positive, run_reporting_errors


def _muscle_colours(count: int) -> np.ndarray:
    """Distinct RGB colours (count, 3) around the hue circle (golden-ratio steps)."""
    import colorsys

    return np.array(
        [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95) for i in range(count)],
        dtype=np.float32,
    )


def _element_surface(mesh, chosen: np.ndarray):
    """(positions, triangles) of the boundary of a subset of a mesh's elements."""
    from ..sim.tetmesh import boundary_faces

    faces = boundary_faces(mesh.tets[chosen])
    used, faces = np.unique(faces, return_inverse=True)
    return mesh.rest_positions[used], faces.reshape(-1, 3).astype(np.int32)


def render_rig_pictures(rig, model, out_dir: Path, resolution: int = 700) -> list[Path]:
    """Render the rig's pictures into out_dir; returns the image paths (contact sheet last)."""
    from ..blender.snapshot import SnapshotMesh, contact_sheet, render_views
    from ..sim.simmesh import JAW, SKULL
    from ..sim.tetmesh import unique_edges
    from ..sim.tissue import OUTER_SKIN_REGIONS

    skin_vertices = np.concatenate([model.region(r) for r in OUTER_SKIN_REGIONS])
    skin_tris = model.triangles(skin_vertices)
    teeth = model.triangles(model.region("teeth"))
    eyes = model.triangles(
        np.concatenate([model.region("eyeball_left"), model.region("eyeball_right")])
    )

    def skin(alpha=1.0):
        return SnapshotMesh(model.neutral, skin_tris, color=(0.86, 0.68, 0.58, 1.0), alpha=alpha)

    rigid = [SnapshotMesh(model.neutral, teeth, color=(0.95, 0.93, 0.85, 1)),
             SnapshotMesh(model.neutral, eyes, color=(0.9, 0.9, 0.92, 1))]  # fmt: skip
    mesh = rig.hr if rig.hr is not None else rig.lr
    muscles = rig.hr_muscles if rig.hr is not None else rig.lr_muscles
    bones = []
    for label, colour in ((SKULL, (0.93, 0.87, 0.72, 1)), (JAW, (0.45, 0.65, 0.95, 1))):
        chosen = (mesh.node_labels[mesh.tets] == label).sum(axis=1) >= 3
        if chosen.any():
            bones.append(SnapshotMesh(*_element_surface(mesh, chosen), color=colour, smooth=False))
    colours = _muscle_colours(len(rig.muscle_names))
    strong = muscles.weight > 0.3
    muscle_meshes = []
    for m in range(len(rig.muscle_names)):
        elements = muscles.element[strong & (muscles.muscle == m)]
        if len(elements):
            positions, faces = _element_surface(mesh, elements)
            muscle_meshes.append(SnapshotMesh(positions, faces, color=(*colours[m], 1.0)))
    lattice = SnapshotMesh(rig.lr.rest_positions, None, edges=unique_edges(rig.lr.tets),
                           color=(0.15, 0.35, 0.8, 1.0))  # fmt: skip
    scenes = {
        "skin": [skin(), *rigid],
        "bones": [skin(0.25), *rigid, *bones],
        "muscles": [skin(0.2), *rigid, *muscle_meshes],
        "lattice": [skin(0.35), lattice],
    }
    paths, labels = [], []
    for name, meshes in scenes.items():
        for path in render_views(meshes, out_dir, f"{rig.preset}_{name}", ("front", "side"),
                                 resolution=(resolution, resolution), samples=12):  # fmt: skip
            paths.append(path)
            labels.append(path.stem)
    sheet = contact_sheet(paths, out_dir / f"{rig.preset}_material_space.png", 4, labels)
    return [*paths, sheet]


def main(argv: list[str]) -> int:
    parser = make_parser("physface rig-pictures", __doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument(
        "--data", type=data_argument, help="data folder (default: PHYSFACE_DATA or ../shared/data)"
    )
    parser.add_argument("--out", default="out/rig", help="output folder for the PNGs")
    parser.add_argument("--resolution", type=positive(int), default=700)
    args = parser.parse_args(argv)

    def body() -> int:
        from ..sim.face_model import load_face_model
        from ..sim.rig import load_rig

        out = output_folder(args.out)  # before the rig, which may take minutes to build
        rig = load_rig(args.preset, args.data)
        paths = render_rig_pictures(rig, load_face_model(args.data), out, args.resolution)
        for path in paths:
            print(path)
        return 0

    return run_reporting_errors(body)
