"""``python -m physface demo``: the main job. Today: build the default rig (cached after the
first run) and render the material space — skin, bones, muscles, LR lattice — to
``out/demo``. It grows into the animated head (keyframed performance, bake, renders) as
the simulator and the Blender workflow land."""

import argparse
import time
from pathlib import Path

from . import run_reporting_errors


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="physface demo", description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--data", help="data folder (default: PHYSFACE_DATA or ../shared/data)")
    args = parser.parse_args(argv)

    def body() -> int:
        from ..sim.face_model import load_face_model
        from ..sim.rig import load_rig
        from .build_rig import describe
        from .rig_pictures import render_rig_pictures

        start = time.perf_counter()
        print(f"physface demo: building (or loading) the {args.preset} rig …", flush=True)
        rig = load_rig(args.preset, args.data, progress=lambda s: print(f"  {s}", flush=True))
        print(describe(rig))
        print("physface demo: rendering the material space …", flush=True)
        paths = render_rig_pictures(rig, load_face_model(args.data), Path(args.out))
        print(f"physface demo: done in {time.perf_counter() - start:.0f} s; pictures:")
        for path in paths:
            print(f"  {path}")
        return 0

    return run_reporting_errors(body)
