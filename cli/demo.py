"""``python -m physface demo``: the main job. Builds the default head, keyframes a
two-second performance from the expression presets with jaw motion, bakes it, saves
``out/demo/demo.blend``, renders a few frames (Cycles on the CPU) and a contact sheet."""

import time
from pathlib import Path

from . import make_parser, run_reporting_errors

DEMO_FRAMES = (1, 10, 18, 26, 34, 42)


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
        keyframe_performance(head)
        blend = out / "demo.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        frames = ",".join(str(f) for f in DEMO_FRAMES)
        renders = render_frames(None, frames, str(out / "frames"), "CYCLES", args.samples,
                                args.resolution_percentage)  # fmt: skip
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        labels = [f"frame {f}" for f in DEMO_FRAMES]
        sheet = contact_sheet(renders, out / "contact_sheet.png", 3, labels)
        print(f"physface demo: done in {time.perf_counter() - start:.0f} s")
        print(f"  scene (baked, plays back without the rig): {blend}")
        print(f"  frames: {out / 'frames'}")
        print(f"  contact sheet: {sheet}")
        return 0

    return run_reporting_errors(body)
