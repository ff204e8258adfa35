"""CPU against CUDA: the same controls give the same skin, and how fast each device plays.

For every rig and device the script runs, from rest, the first ``--agree-frames`` frames of
the "amazement" theme (bench_simulator's ``theme``) tightly converged (LR 1e-5, HR the
training tolerance) and keeps the skin, then times the LR simulator over the theme at the
playback tolerance (best of two passes) and a few HR frames at the training tolerance.
The table gives FPS (LR) or seconds per frame (HR), iterations, and the largest skin
difference (mm) from the CPU skin of the same frames: from the CPU run in the same call,
or, on a machine whose Warp has no CPU compiler, from a ``--record`` file a CPU run wrote.

Here (CPU):      python benchmarks/bench_cuda.py --presets tiny default --record ref.npz \
                     --pack DIR
GPU machine:     python benchmarks/bench_cuda.py --pack-folder DIR --devices cuda:0 \
                     --reference ref.npz

``--pack DIR`` writes what a bare machine needs to run the same rigs without the data
folder: each rig's .npz (a rig carries all that simulation and skinning need).
Speed ratios between devices are printed only for devices measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_simulator import HR_START, play, theme_sequence, write_results  # noqa: E402

AGREE_TOLERANCE = 1e-5
AGREE_LENGTH = 72  # the compared frames come from the theme at this length on every machine


def load_inputs(args) -> list[tuple[str, object]]:
    """(label, rig) for every rig asked for: by preset here, or from a pack (a rig is
    self-contained: no face model or data folder needed on the GPU machine)."""
    from physface.sim.rig import load_rig, read_rig

    if args.pack_folder:
        rigs = sorted(Path(args.pack_folder).glob("rig_*.npz"))
        return [(path.stem[4:], read_rig(path)) for path in rigs]
    inputs = []
    for preset in args.presets:
        with_hr = not preset.endswith("-lr")
        name = preset.removesuffix("-lr")
        inputs.append((preset, load_rig(name, with_hr=with_hr)))
    return inputs


def pack(folder: Path, inputs) -> None:
    """The rigs, for a bare machine."""
    from physface.sim.rig import save_rig

    folder.mkdir(parents=True, exist_ok=True)
    for label, rig in inputs:
        save_rig(rig, folder / f"rig_{label}.npz")


def converged_skin(simulator, stage, sequence) -> np.ndarray:
    """Positions (F, V, 3) float32 cm of every ICT vertex, a sequence played from rest."""
    simulator.reset()
    frames = []
    for controls in sequence:
        result = simulator.step(controls)
        frames.append(stage(result.volume_positions, result.head_transform,
                            result.jaw_transform).copy())  # fmt: skip
    return np.stack(frames)


def bench(label, rig, device, args, reference) -> list[dict]:
    from physface.sim.simulator import Simulator
    from physface.sim.skin_stage import EmbeddedSkinStage
    from physface.sim.tolerances import PLAYBACK_TOLERANCE, TRAINING_TOLERANCE

    theme = theme_sequence(max(args.frames, HR_START + args.hr_frames))
    rows = []
    resolutions = ["lr"] + (["hr"] if rig.hr is not None and args.hr_frames else [])
    for resolution in resolutions:
        mesh = rig.lr if resolution == "lr" else rig.hr
        agree_tolerance = AGREE_TOLERANCE if resolution == "lr" else TRAINING_TOLERANCE
        common = dict(backend=args.backend, device=device)
        stage = EmbeddedSkinStage(rig, resolution)
        clock = time.perf_counter()
        exact = Simulator(rig, resolution, tolerance=agree_tolerance, max_iterations=500, **common)
        setup = time.perf_counter() - clock
        agree_frames = args.agree_frames if resolution == "lr" else 2
        skin = converged_skin(exact, stage, theme_sequence(AGREE_LENGTH)[:agree_frames])
        key = f"{label}/{resolution}"
        if device == "cpu":
            reference.setdefault(key, skin)
        row = {
            "rig": label,
            "resolution": resolution,
            "device": device,
            "nodes": int(mesh.vertex_count),
            "elements": int(mesh.element_count),
            "setup_s": setup,
        }
        if key in reference and reference[key] is not skin:
            row["max_skin_difference_mm"] = float(np.abs(skin - reference[key]).max()) * 10.0
        if resolution == "lr":
            player = Simulator(rig, "lr", tolerance=PLAYBACK_TOLERANCE, **common)
            player.step()  # compile outside the timings
            timed = min(
                (play(player, stage, theme[: args.frames]) for _ in range(2)),
                key=lambda r: r["ms_per_frame"],
            )
        else:
            sequence = theme[HR_START - 2 : HR_START + args.hr_frames]
            timed = play(exact, stage, sequence, untimed=2)
        row.update(
            ms_per_frame=timed["ms_per_frame"],
            fps=timed["fps"],
            iterations_mean=timed["iterations_mean"],
            stage_ms_per_frame=timed["stage_ms_per_frame"],
        )
        rows.append(row)
        del exact
    return rows


def print_table(rows: list[dict], info: dict) -> None:
    print(f"machine: {info['processor']}, {info['cpus']} CPUs, GPU: {info['gpu']}")
    header = (
        f"{'rig':12} {'res':3} {'device':7} {'nodes':>7} {'elements':>9} {'FPS':>7} "
        f"{'ms/frame':>9} {'iter':>5} {'local':>7} {'solve':>7} {'vs cpu':>7} {'Δskin mm':>9}"
    )
    print(header)
    print("-" * len(header))
    cpu = {(r["rig"], r["resolution"]): r["ms_per_frame"] for r in rows if r["device"] == "cpu"}
    for r in rows:
        base = cpu.get((r["rig"], r["resolution"]))
        ratio = f"{base / r['ms_per_frame']:6.1f}x" if base and r["device"] != "cpu" else "      -"
        diff = r.get("max_skin_difference_mm")
        stage = r["stage_ms_per_frame"]
        print(
            f"{r['rig']:12} {r['resolution']:3} {r['device']:7} {r['nodes']:7d} "
            f"{r['elements']:9d} {r['fps']:7.2f} {r['ms_per_frame']:9.1f} "
            f"{r['iterations_mean']:5.1f} {stage.get('local', 0):7.1f} "
            f"{stage.get('solve', 0):7.1f} {ratio} "
            f"{'-' if diff is None else f'{diff:.4f}':>9}"
        )
    print(
        "LR: the theme at the playback tolerance; HR: frames from 24 at the training tolerance; "
        f"Δskin: largest skin difference from the CPU (LR converged to {AGREE_TOLERANCE:g})"
    )


def machine() -> dict:
    import warp as wp

    wp.init()
    gpus = [wp.get_device(f"cuda:{i}").name for i in range(wp.get_cuda_device_count())]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "gpu": ", ".join(gpus) or "none",
        "warp_cpu": wp.is_cpu_available(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["tiny", "default"],
        help="presets; NAME-lr for the LR-only rig (e.g. paper-lr)",
    )
    parser.add_argument("--pack-folder", help="rigs written by --pack")
    parser.add_argument(
        "--devices",
        nargs="+",
        default=None,
        help="Warp devices (default: cpu when available, then every GPU)",
    )
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--agree-frames", type=int, default=12)
    parser.add_argument("--hr-frames", type=int, default=3)
    parser.add_argument("--backend", default="splu", help="factorisation on the host")
    parser.add_argument("--record", help="write the CPU skins (npz) for another machine")
    parser.add_argument("--reference", help="CPU skins written by --record")
    parser.add_argument("--pack", help="write the rigs to this folder")
    args = parser.parse_args(argv)

    info = machine()
    inputs = load_inputs(args)
    if args.pack:
        pack(Path(args.pack), inputs)
        print(f"packed {len(inputs)} rigs into {args.pack}")
    import warp as wp

    devices = args.devices or (["cpu"] if info["warp_cpu"] else []) + [
        f"cuda:{i}" for i in range(wp.get_cuda_device_count())
    ]
    reference: dict[str, np.ndarray] = {}
    if args.reference:
        with np.load(args.reference) as stored:
            reference = {name: stored[name] for name in stored.files}
    rows = []
    for label, rig in inputs:
        for device in devices:
            rows += bench(label, rig, device, args, reference)
    print_table(rows, info)
    if args.record:
        np.savez(args.record, **reference)
        print(f"wrote {args.record}")
    write_results("bench_cuda", {"machine": info, "rows": rows})


if __name__ == "__main__":
    main()
