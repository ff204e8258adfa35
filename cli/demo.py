"""``python -m physface demo``: the main job. Builds the default head, keyframes a
two-second performance from the expression presets with jaw motion, bakes it with the fine
skin (the shipped network model; the coarse skin where no model fits the rig), saves
``out/demo/demo.blend``, renders a few frames (Cycles on the CPU) and a contact sheet, then
compares the coarse and the fine skin on the same coarse frames: the blink that ends the
performance frame by frame (``blink.png``), close-ups of the mouth and
the eyes (coarse | fine) at the widest mouth opening and at the strongest lid closure
(``close_ups.png``), and the skin edges stretched beyond 3x their rest length at the
mouth-open frames (``skins.json``)."""

import json
import time
from pathlib import Path

from . import make_parser, run_reporting_errors

DEMO_FRAMES = (1, 10, 18, 26, 34, 42, 53)
STRETCH_FACTOR = 3.0
CLOSE_UP_PIXELS = 400
# Drawn with the skin in the close-ups (sRGB): the eyes and teeth that show in the openings.
CLOSE_UP_PARTS = {
    "eyeball_left": (0.85, 0.84, 0.8),
    "eyeball_right": (0.85, 0.84, 0.8),
    "upper_teeth": (0.9, 0.87, 0.78),
    "lower_teeth": (0.9, 0.87, 0.78),
}


def compare_skins(head, out: Path, samples: int, say=print) -> dict:
    """Coarse against fine over the demo performance: stretched edges at the mouth-open
    frames and the close-ups; returns the report written to ``out/skins.json``."""
    import numpy as np

    from ..blender import live
    from ..blender.demo_scene import BLINK_FRAMES, PERFORMANCE, coarse_and_fine
    from ..blender.snapshot import SnapshotMesh, contact_sheet, render_views
    from ..nets.evaluate import ict_close_ups, mouth_open_frames
    from ..sim.face_model import REGIONS, load_face_model
    from ..sim.metrics import stretched_edges
    from ..sim.neighbours import triangle_edges
    from .evaluate import SKIN_COLOUR

    frames = range(PERFORMANCE[0][0], PERFORMANCE[-1][0] + 1)
    coarse, fine, controls = coarse_and_fine(head, frames)
    ict_rest = live.runtime_for(head).player.rig.ict_rest_positions
    face = load_face_model()
    skin = np.arange(REGIONS["face"][0], REGIONS["head_neck"][1])  # the visible skin
    edges = triangle_edges(face.triangles(skin))
    jaw = np.array([c.jaw.opening_deg for c in controls])
    lids = np.array(
        [sum(v for k, v in c.activations.items() if k.startswith("orbicularis_oculi_palpebral"))
         for c in controls]
    )  # fmt: skip
    opened, rule = mouth_open_frames(np.arange(len(frames)), fine[:, skin], ict_rest[skin], jaw)
    counts = {
        label: stretched_edges(skins[opened], ict_rest, edges, STRETCH_FACTOR)
        for label, skins in (("coarse", coarse), ("fine", fine))
    }
    say(f"physface demo: visible skin edges stretched beyond {STRETCH_FACTOR:g}x their rest "
        f"length at the {len(opened)} mouth-open frames ({rule}), "
        f"of {len(edges)} edges:")  # fmt: skip
    for label, per_frame in counts.items():
        worst = frames[opened[int(per_frame.argmax())]]
        say(f"  {label}: {per_frame.sum()} in all, {per_frame.mean():.1f} per frame, "
            f"most {per_frame.max()} (frame {worst})")  # fmt: skip

    picks = {"jaw open": int(np.argmax(jaw)), "lids closing": int(np.argmax(lids))}
    regions = ict_close_ups(face, ict_rest, CLOSE_UP_PARTS)
    colours = np.tile(np.asarray(SKIN_COLOUR[:3], np.float32), (len(ict_rest), 1))
    for part, colour in CLOSE_UP_PARTS.items():
        colours[slice(*REGIONS[part])] = colour
    work = out / "close_ups"
    paths, labels = [], []
    for why, index in picks.items():
        for region in ("mouth", "eyes"):
            for label, skins in (("coarse", coarse), ("fine", fine)):
                mesh = SnapshotMesh(skins[index], regions[region], vertex_colors=colours)
                stem = f"frame{frames[index]:03d}_{region}_{label}"
                paths += render_views([mesh], work, stem, ("front",),
                                      (CLOSE_UP_PIXELS, CLOSE_UP_PIXELS), samples)  # fmt: skip
                labels.append(f"f{frames[index]} {why}, {region}: {label}")
    sheet = contact_sheet(paths, out / "close_ups.png", 2, labels)
    paths, labels = [], []  # the blink, frame by frame: coarse above, fine below
    for label, skins in (("coarse", coarse), ("fine", fine)):
        for frame in BLINK_FRAMES:
            mesh = SnapshotMesh(skins[frames.index(frame)], regions["eyes"], vertex_colors=colours)
            paths += render_views([mesh], work, f"blink{frame:03d}_{label}", ("front",),
                                  (CLOSE_UP_PIXELS, CLOSE_UP_PIXELS), samples)  # fmt: skip
            labels.append(f"f{frame} blink: {label}")
    blink_sheet = contact_sheet(paths, out / "blink.png", len(BLINK_FRAMES), labels)
    report = {
        "stretch_factor": STRETCH_FACTOR,
        "edges": int(len(edges)),
        "edges_of": "the visible skin (ICT face and head/neck)",
        "mouth_open_frames": [frames[i] for i in opened],
        "mouth_open_rule": rule,
        "stretched_edges": {label: per_frame.tolist() for label, per_frame in counts.items()},
        "close_up_frames": {why: frames[i] for why, i in picks.items()},
        "skin": head.physface.skin_in_use,
    }
    (out / "skins.json").write_text(json.dumps(report, indent=2))
    say(f"  close-ups (coarse | fine): {sheet}")
    say(f"  blink (coarse above, fine below): {blink_sheet}")
    return report


def main(argv: list[str]) -> int:
    parser = make_parser("physface demo", __doc__)
    parser.add_argument("--preset", default="default", help="rig preset (tiny, default, paper)")
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument("--samples", type=int, default=24, help="Cycles samples per frame")
    parser.add_argument("--resolution-percentage", type=int, default=100)
    args = parser.parse_args(argv)

    def body() -> int:
        import bpy

        from .. import register
        from ..blender.batch import render_frames
        from ..blender.demo_scene import keyframe_performance, new_demo_scene
        from ..blender.snapshot import contact_sheet

        start = time.perf_counter()
        if not hasattr(bpy.types.Object, "physface"):
            register()
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        print(f"physface demo: adding a {args.preset} head (builds the rig on first run) …")
        head = new_demo_scene(args.preset)
        if head.physface.last_error:
            print(f"physface demo: error: {head.physface.last_error}")
            return 1
        print(f"physface demo: skin {head.physface.skin_in_use}")
        if head.physface.skin_note:
            print(f"physface demo: the fine skin is off: {head.physface.skin_note}")
        keyframe_performance(head)
        blend = out / "demo.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        frames = ",".join(str(f) for f in DEMO_FRAMES)
        renders = render_frames(None, frames, str(out / "frames"), "CYCLES", args.samples,
                                args.resolution_percentage)  # fmt: skip
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        kind = "fine" if head.physface.bake_skin.startswith("fine") else "coarse"
        labels = [f"frame {f}, {kind} skin" for f in DEMO_FRAMES]
        sheet = contact_sheet(renders, out / "contact_sheet.png", 3, labels)
        if head.physface.skin_in_use.startswith("fine"):
            compare_skins(head, out, max(8, args.samples // 3))
        print(f"physface demo: done in {time.perf_counter() - start:.0f} s")
        print(f"  scene (baked, plays back without the rig): {blend}")
        print(f"  frames: {out / 'frames'}")
        print(f"  contact sheet: {sheet}")
        return 0

    return run_reporting_errors(body)
