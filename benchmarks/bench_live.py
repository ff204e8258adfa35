"""Live playback inside bpy: frames per second end to end, split per stage, for the coarse
(embedded) and the fine (network) skin in the same run.

    .venv/bin/python benchmarks/bench_live.py [--preset default] [--frames 72] [--repeats 3]

Adds a head with the add-on's own operator, keyframes a changing performance (expression
presets with jaw motion), then plays frames one by one with ``scene.frame_set`` (the
persistent frame-change handler runs the playback pipeline, ``sim.playback.HeadPlayer``)
once with each skin, and reports the split per stage from the head's own timings
(simulation, skin stage, shape-key write) and Blender's share (depsgraph, handler
overhead); each skin is played ``--repeats`` times and the median play (by its end-to-end
time) is the table, the others' times beside it (this shared 2-core CPU varies ±3 ms a
frame from one play to the next). The baseline of the run is the same pipeline outside
Blender: the player alone on the same controls, so the ratio says what Blender adds. The
fine skin needs a model that fits the rig (the shipped one for ``default``); with it the
next frame's simulation runs beside each frame's skin (the player's lookahead), so the
simulation's own time and the part of it the frame waited are both rows. Writes
benchmarks/results/live_<preset>.json.
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

STAGES = ("simulation_ms", "simulation_wait_ms", "skin_ms", "eyelids_ms", "write_ms")
MAIN_THREAD = STAGES[1:]  # the simulation beyond its wait ran beside the last frame's skin
SKINS = {"COARSE": "coarse (embedded)", "FINE": "fine (network)"}


def play(bpy, live, head, frames: int) -> dict:
    """Play frames 2..frames after a warm-up frame; per-frame walls, stages and controls."""
    scene = bpy.context.scene
    props = head.physface
    scene.frame_set(1)  # warm-up: kernels loaded, factor built, model loaded
    stages = {name: [] for name in (*STAGES, "iterations")}
    walls, controls = [], []
    for frame in range(2, frames + 1):
        clock = time.perf_counter()
        scene.frame_set(frame)
        walls.append(1000 * (time.perf_counter() - clock))
        if props.last_error:
            raise RuntimeError(f"error at frame {frame}: {props.last_error}")
        for name in stages:
            stages[name].append(getattr(props, name))
        controls.append(live.controls_of(head))
    player = live.runtime_for(head).player
    player.reset()
    player.play(1, controls[0])
    alone = []
    for frame, frame_controls in enumerate(controls, start=2):
        following = controls[frame - 1] if frame - 1 < len(controls) else None
        clock = time.perf_counter()
        player.play(frame, frame_controls, following)  # with the lookahead, as in Blender
        alone.append(1000 * (time.perf_counter() - clock))
    return {"walls": walls, "stages": stages, "alone": alone, "skin": props.skin_in_use}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--tolerance", type=float, help="solver tolerance (default: the head's)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="plays per skin; the table is the median one"
    )
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
    bpy.context.scene.frame_end = args.frames
    props = head.physface
    if args.tolerance is not None:
        props.tolerance = args.tolerance
    runs = {}
    for skin in SKINS:
        props.skin_stage = skin
        try:
            plays = [play(bpy, live, head, args.frames) for _ in range(max(1, args.repeats))]
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        plays.sort(key=lambda run: float(np.mean(run["walls"])))
        runs[skin] = plays[len(plays) // 2]
        runs[skin]["all_walls_ms"] = [float(np.mean(run["walls"])) for run in plays]
        if skin == "FINE" and not runs[skin]["skin"].startswith("fine"):
            print(f"no fine skin for {args.preset}: {props.skin_note}", file=sys.stderr)
            runs.pop(skin)

    mesh = live.runtime_for(head).player.simulator.mesh
    facts = machine()
    print(f"machine: {facts['processor']}, {facts['cpus']} cores (CPU)")
    print(f"preset {args.preset}: LR {mesh.element_count:,} elements, {mesh.vertex_count:,} nodes")
    summary = {}
    for skin, run in runs.items():
        mean = {name: float(np.mean(values)) for name, values in run["stages"].items()}
        wall, alone = float(np.mean(run["walls"])), float(np.mean(run["alone"]))
        summary[skin] = {"skin": run["skin"], "stages_ms": mean, "wall_ms": wall,
                         "walls_of_every_play_ms": run["all_walls_ms"],
                         "fps": 1000 / wall, "player_alone_ms": alone,
                         "player_alone_fps": 1000 / alone}  # fmt: skip
    first = next(iter(summary.values()))
    print(
        f"the median of {max(1, args.repeats)} plays per skin (end to end, ms: "
        + "; ".join(
            f"{SKINS[s]} " + ", ".join(f"{w:.1f}" for w in r["all_walls_ms"])
            for s, r in runs.items()
        )
        + ")"
    )
    print(
        f"{len(runs[next(iter(runs))]['walls'])} frames per skin at tolerance "
        f"{props.tolerance:g}, mean {first['stages_ms']['iterations']:.1f} iterations per frame"
    )
    print(f"{'ms per frame':<30}" + "".join(f"{SKINS[s]:>20}" for s in summary))
    label = {"simulation_ms": "simulation (its own time)",
             "simulation_wait_ms": "  of it the frame waited"}  # fmt: skip
    rows = [(label.get(name, name[:-3]), lambda r, n=name: r["stages_ms"][n]) for name in STAGES]
    rows += [
        ("Blender (depsgraph, handler)",
         lambda r: r["wall_ms"] - sum(r["stages_ms"][n] for n in MAIN_THREAD)),
        ("frame_set wall (end to end)", lambda r: r["wall_ms"]),
        ("baseline: player alone", lambda r: r["player_alone_ms"]),
    ]  # fmt: skip
    for label, value in rows:
        cells = "".join(
            f"{value(r):>12.2f} ({value(r) / r['wall_ms']:>4.0%})" for r in summary.values()
        )
        print(f"{label:<30}{cells}")
    print(f"{'live end-to-end FPS':<30}" + "".join(f"{r['fps']:>20.1f}" for r in summary.values()))
    print(
        f"{'player alone FPS':<30}"
        + "".join(f"{r['player_alone_fps']:>20.1f}" for r in summary.values())
    )
    if "FINE" in summary:
        fine, coarse = summary["FINE"], summary["COARSE"]
        print(
            f"fine skin: {fine['fps']:.1f} FPS end to end (target 20), "
            f"{fine['wall_ms'] / coarse['wall_ms']:.2f}x the coarse skin's frame time"
        )
    write_results(
        f"live_{args.preset}",
        {"preset": args.preset, "tolerance": props.tolerance,
         "frames": args.frames - 1, "elements": int(mesh.element_count), "skins": summary,
         "machine": facts},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
