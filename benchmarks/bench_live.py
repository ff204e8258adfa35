"""Live playback inside bpy: frames per second end to end, split per stage.

    .venv/bin/python benchmarks/bench_live.py [--preset default] [--frames 72]

Adds a head with the add-on's own operator, keyframes a changing performance (expression
presets with jaw motion), then plays frames one by one with ``scene.frame_set`` (the
persistent frame-change handler runs the playback pipeline, ``sim.playback.HeadPlayer``)
and reports the split per stage from the head's own timings (simulation, skin stage,
shape-key write) and Blender's share (depsgraph, handler overhead). The baseline in the
same run is the same pipeline outside Blender: the player alone on the same controls,
so the ratio says what Blender adds. Writes benchmarks/results/live_<preset>.json.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_simulator import machine, write_results  # noqa: E402

STAGES = ("simulation_ms", "skin_ms", "write_ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--tolerance", type=float, help="solver tolerance (default: the head's)")
    args = parser.parse_args()
    os.environ.setdefault("PHYSFACE_CACHE", str(REPO / ".cache"))
    os.environ.setdefault("WARP_CACHE_PATH", str(REPO / ".cache" / "warp"))
    home = tempfile.mkdtemp(prefix="physface-bench-")
    os.environ["HOME"] = home
    os.environ["BLENDER_USER_RESOURCES"] = f"{home}/blender"
    import bpy
    import numpy as np

    import physface
    from physface.blender import live
    from physface.blender.demo_scene import keyframe_performance, new_demo_scene

    physface.register()
    head = new_demo_scene(args.preset)
    keyframe_performance(head)
    scene = bpy.context.scene
    scene.frame_end = args.frames
    props = head.physface
    if args.tolerance is not None:
        props.tolerance = args.tolerance
    scene.frame_set(1)  # warm-up: kernels loaded, factor built
    stages = {name: [] for name in (*STAGES, "iterations")}
    walls, controls = [], []
    for frame in range(2, args.frames + 1):
        clock = time.perf_counter()
        scene.frame_set(frame)
        walls.append(1000 * (time.perf_counter() - clock))
        if props.last_error:
            print(f"error at frame {frame}: {props.last_error}", file=sys.stderr)
            return 1
        for name in stages:
            stages[name].append(getattr(props, name))
        controls.append(live.controls_of(head))
    player = live.runtime_for(head).player
    player.reset()
    player.play(1, controls[0])
    alone = []
    for frame, frame_controls in enumerate(controls, start=2):
        clock = time.perf_counter()
        player.play(frame, frame_controls)
        alone.append(1000 * (time.perf_counter() - clock))

    mean = {name: float(np.mean(values)) for name, values in stages.items()}
    wall, baseline = float(np.mean(walls)), float(np.mean(alone))
    pipeline = sum(mean[name] for name in STAGES)
    mesh = player.simulator.mesh
    facts = machine()
    print(f"machine: {facts['processor']}, {facts['cpus']} cores (CPU)")
    print(f"preset {args.preset}: LR {mesh.element_count:,} elements, {mesh.vertex_count:,} nodes")
    print(
        f"{len(walls)} frames at tolerance {props.tolerance:g}, "
        f"mean {mean['iterations']:.1f} iterations per frame"
    )
    print(f"{'stage':<30}{'ms/frame':>10}{'share':>8}")
    for name in STAGES:
        print(f"{name[:-3]:<30}{mean[name]:>10.2f}{mean[name] / wall:>8.0%}")
    other = wall - pipeline
    print(f"{'Blender (depsgraph, handler)':<30}{other:>10.2f}{other / wall:>8.0%}")
    print(f"{'frame_set wall (end to end)':<30}{wall:>10.2f}{1:>8.0%}")
    print(f"{'baseline: player alone':<30}{baseline:>10.2f}{baseline / wall:>8.0%}")
    print(
        f"live end-to-end: {1000 / wall:.1f} FPS; player alone {1000 / baseline:.1f} FPS "
        f"(Blender costs {wall / baseline:.2f}x); release 1 measured 37 FPS at default"
    )
    write_results(
        f"live_{args.preset}",
        {
            "preset": args.preset,
            "frames": len(walls),
            "tolerance": props.tolerance,
            "stages_ms": mean,
            "wall_ms": wall,
            "fps": 1000 / wall,
            "pipeline_fps": 1000 / pipeline,
            "player_alone_ms": baseline,
            "player_alone_fps": 1000 / baseline,
            "elements": int(mesh.element_count),
            "machine": facts,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
