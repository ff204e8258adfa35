"""Live playback inside bpy: frames per second of simulation + skin stage + shape-key write.

    .venv/bin/python benchmarks/bench_live.py [--preset default] [--frames 72]

Adds a head with the add-on's own operator, keyframes a changing performance (expression
presets with jaw motion), then plays frames one by one with ``scene.frame_set`` (the
persistent frame-change handler does the work) and reports the split per stage from the
head's own timings, and the wall time per frame including Blender's depsgraph update.
Writes benchmarks/results/live_<preset>.json.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--frames", type=int, default=72)
    args = parser.parse_args()
    os.environ.setdefault("PHYSFACE_CACHE", str(REPO / ".cache"))
    os.environ.setdefault("WARP_CACHE_PATH", str(REPO / ".cache" / "warp"))
    home = tempfile.mkdtemp(prefix="physface-bench-")
    os.environ["HOME"] = home
    os.environ["BLENDER_USER_RESOURCES"] = f"{home}/blender"
    import bpy
    import numpy as np

    import physface
    from physface.operators.demo_scene import keyframe_performance, new_demo_scene

    physface.register()
    head = new_demo_scene(args.preset)
    keyframe_performance(head)
    scene = bpy.context.scene
    scene.frame_end = args.frames
    props = head.physface
    scene.frame_set(1)  # warm-up: kernels loaded, factor built
    stages = {"simulation_ms": [], "skin_ms": [], "write_ms": [], "iterations": []}
    walls = []
    for frame in range(2, args.frames + 1):
        clock = time.perf_counter()
        scene.frame_set(frame)
        walls.append(1000 * (time.perf_counter() - clock))
        if props.last_error:
            print(f"error at frame {frame}: {props.last_error}", file=sys.stderr)
            return 1
        for name in stages:
            stages[name].append(getattr(props, name))
    mean = {name: float(np.mean(values)) for name, values in stages.items()}
    wall = float(np.mean(walls))
    pipeline = mean["simulation_ms"] + mean["skin_ms"] + mean["write_ms"]
    rig = physface.operators.live._runtimes[head.session_uid].simulator.mesh
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (CPU)")
    print(f"preset {args.preset}: LR {rig.element_count:,} elements, {rig.vertex_count:,} vertices")
    print(f"{len(walls)} frames, mean {mean['iterations']:.1f} iterations per frame")
    print(f"{'stage':<28}{'ms/frame':>10}{'share':>8}")
    for name in ("simulation_ms", "skin_ms", "write_ms"):
        print(f"{name[:-3]:<28}{mean[name]:>10.2f}{mean[name] / wall:>8.0%}")
    other = wall - pipeline
    print(f"{'Blender (depsgraph, other)':<28}{other:>10.2f}{other / wall:>8.0%}")
    print(f"{'frame_set wall':<28}{wall:>10.2f}{1:>8.0%}")
    print(f"live end-to-end: {1000 / wall:.1f} FPS (pipeline alone {1000 / pipeline:.1f} FPS)"
          f"; target 20 FPS")  # fmt: skip
    result = {"preset": args.preset, "frames": len(walls), "stages_ms": mean, "wall_ms": wall,
              "fps": 1000 / wall, "pipeline_fps": 1000 / pipeline,
              "elements": rig.element_count, "machine": f"{os.cpu_count()}-core CPU"}  # fmt: skip
    out = REPO / "benchmarks" / "results" / f"live_{args.preset}.json"
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
