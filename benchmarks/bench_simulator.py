"""Simulator speed: LR playback frames per second, iterations and where the time goes; HR
seconds per frame at the training residual and the HR/LR time ratio.

For each rig preset (default: tiny and default) the LR simulator plays two warm-started
sequences at the playback tolerance: ``slow``, a few muscles and the jaw easing in and out
over seconds, and ``theme``, the "amazement" performance (speech syllables included). Each
is played twice from rest and the faster pass is reported. The skin error against a fully
converged solve of the same frame (tolerance 1e-5) shows what the playback residual costs
in accuracy. When the rig has an HR mesh, a few frames of the theme are solved at the
training tolerance (``--hr-proxy``: without one, on a BCC lattice with as many elements).
Prints a table with the machine and its load, and writes ``results/bench_simulator.json``.

    python benchmarks/bench_simulator.py [--presets tiny default] [--frames 72]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
HR_START = 24  # the theme's first HR frame timed


def slow_sequence(muscle_names, frames: int):
    """A few muscles and the jaw easing in and out over ~3 s (24 fps)."""
    from physface.sim.anatomy import JawPose
    from physface.sim.controls import Controls

    wanted = (
        "zygomaticus_major_L",
        "zygomaticus_major_R",
        "orbicularis_oris",
        "frontalis_medial_L",
        "frontalis_medial_R",
    )
    chosen = [name for name in wanted if name in muscle_names]
    t = np.arange(frames) / 24.0
    sequence = []
    for seconds in t:
        ease = 0.5 - 0.5 * np.cos(2 * np.pi * seconds / 3.0)
        activations = {name: float(ease * (0.6 + 0.1 * i)) for i, name in enumerate(chosen)}
        jaw = JawPose(opening_deg=float(12.0 * (0.5 - 0.5 * np.cos(2 * np.pi * seconds / 2.0))))
        sequence.append(Controls(activations=activations, jaw=jaw))
    return sequence


def theme_sequence(frames: int):
    from physface.sim.performances import theme_performance

    performance = theme_performance("amazement", frames=frames, seed=0)
    return [performance.controls(i) for i in range(frames)]


def play(simulator, stage, sequence, reference=None, untimed: int = 0) -> dict:
    """Play a sequence from rest through the simulator and the skin ``stage``; timings
    (of the frames after the first ``untimed``), iterations and (optionally) the skin
    error against a ``reference`` simulator through the same stage."""

    def skin(result):
        return stage(result.volume_positions, result.head_transform, result.jaw_transform)

    simulator.reset()
    if reference is not None:
        reference.reset()
    for controls in sequence[:untimed]:
        simulator.step(controls)
    sequence = sequence[untimed:]
    seconds, iterations, stages, errors = [], [], {}, []
    for controls in sequence:
        clock = time.perf_counter()
        result = simulator.step(controls)
        skinned = time.perf_counter()
        positions = skin(result)
        seconds.append(time.perf_counter() - clock)
        iterations.append(result.iterations)
        for name, value in result.seconds.items():
            stages[name] = stages.get(name, 0.0) + value
        stages["skin"] = stages.get("skin", 0.0) + time.perf_counter() - skinned
        if reference is not None:
            positions = positions.copy()
            exact = skin(reference.step(controls))
            errors.append(float(np.abs(positions - exact).max()) * 10.0)  # mm
    frames = len(sequence)
    row = {
        "frames": frames,
        "fps": frames / sum(seconds),
        "ms_per_frame": 1e3 * sum(seconds) / frames,
        "iterations_mean": float(np.mean(iterations)),
        "iterations_max": int(np.max(iterations)),
        "stage_ms_per_frame": {k: 1e3 * v / frames for k, v in stages.items()},
    }
    if errors:
        row["skin_error_mm_mean_of_max"] = float(np.mean(errors))
        row["skin_error_mm_max"] = float(np.max(errors))
    return row


def bench_preset(
    preset: str, frames: int, backends: list[str], hr_frames: int, hr_proxy: bool
) -> dict:
    from physface.sim.face_model import load_face_model
    from physface.sim.rig import load_rig
    from physface.sim.simulator import Simulator
    from physface.sim.skin_stage import EmbeddedSkinStage
    from physface.sim.tolerances import PLAYBACK_TOLERANCE, TRAINING_TOLERANCE

    model = load_face_model()
    hr_note = ""
    try:
        rig = load_rig(preset)
    except Exception as error:  # noqa: BLE001 - the HR build is optional here: report why
        hr_note = f"HR unavailable: {type(error).__name__}: {error}"
        rig = load_rig(preset, with_hr=False)
    sequences = {
        "slow": slow_sequence(rig.muscle_names, frames),
        "theme": theme_sequence(frames),
    }
    report = {
        "preset": preset,
        "lr_nodes": int(rig.lr.vertex_count),
        "lr_elements": int(rig.lr.element_count),
        "playback_tolerance": PLAYBACK_TOLERANCE,
        "lr": {},
    }
    for backend in backends:
        simulator = Simulator(rig, "lr", tolerance=PLAYBACK_TOLERANCE, backend=backend)
        reference = Simulator(rig, "lr", tolerance=1e-5, max_iterations=500, backend=backend)
        stage = EmbeddedSkinStage(rig)
        report["lr_free_nodes"] = int(len(simulator.free_nodes))
        report["lr_simulated_elements"] = int(simulator.element_count)
        simulator.step()  # compile the kernels outside the timings
        for name, sequence in sequences.items():
            error_pass = play(simulator, stage, sequence, reference)
            timed = min(
                (play(simulator, stage, sequence) for _ in range(2)),
                key=lambda r: r["ms_per_frame"],
            )
            timed["skin_error_mm_mean_of_max"] = error_pass["skin_error_mm_mean_of_max"]
            timed["skin_error_mm_max"] = error_pass["skin_error_mm_max"]
            timed["factor_ms"] = 1e3 * simulator.factor_seconds
            report["lr"][f"{name}/{backend}"] = timed
    hr_rig, hr_resolution = rig, "hr"
    if rig.hr is None and hr_proxy:
        # Stand-in until the conforming HR mesh exists: a finer BCC lattice of the same
        # material space with hr_ratio times the LR element count.
        from physface.sim.rig import PRESETS, RigPreset, build_rig

        base = PRESETS[preset]
        spacing = base.lr_spacing_cm / base.hr_ratio ** (1.0 / 3.0)
        hr_rig = build_rig(RigPreset(f"{preset}-hr-proxy", spacing, build_hr=False), model)
        hr_resolution = "lr"
        report["hr_note"] = (
            f"{hr_note}; HR timed on a proxy: the BCC lattice at {spacing:.3f} cm "
            f"({hr_rig.lr.element_count} elements), not the conforming HR mesh"
        )
    if hr_frames > 0 and (rig.hr is not None or hr_resolution == "lr"):
        mesh = hr_rig.hr if hr_resolution == "hr" else hr_rig.lr
        # frames HR_START.. of the theme (it moves there), warm-started from two before
        sequence = sequences["theme"][HR_START - 2 : HR_START + hr_frames]
        for backend in backends:
            clock = time.perf_counter()
            simulator = Simulator(
                hr_rig,
                hr_resolution,
                tolerance=TRAINING_TOLERANCE,
                max_iterations=500,
                backend=backend,
            )
            setup = time.perf_counter() - clock
            hr_stage = EmbeddedSkinStage(hr_rig, hr_resolution)
            row = play(simulator, hr_stage, sequence, untimed=2)
            row["setup_s"] = setup
            row["factor_s"] = simulator.factor_seconds
            row["s_per_frame"] = row["ms_per_frame"] / 1e3
            row["nodes"], row["elements"] = int(mesh.vertex_count), int(mesh.element_count)
            row["free_nodes"] = int(len(simulator.free_nodes))
            lr = report["lr"][f"theme/{backend}"]["ms_per_frame"]
            row["hr_over_lr_time"] = row["ms_per_frame"] / lr
            report.setdefault("hr", {})[backend] = row
    elif "hr_note" not in report:
        report["hr_note"] = hr_note or "the rig has no HR mesh"
    return report


def write_results(name: str, payload: dict) -> Path:
    """Write a benchmark's JSON to ``results/<name>.json`` and say where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def print_table(reports: list[dict], info: dict) -> None:
    print(f"machine: {info['processor']}, {info['cpus']} CPUs, load {info['load_average']}")
    header = (
        f"{'preset':8} {'sequence/backend':18} {'nodes':>6} {'FPS':>6} {'ms/fr':>7} "
        f"{'iter':>5} {'max':>4} {'local':>6} {'rhs':>5} {'solve':>6} {'skin':>5} "
        f"{'setup':>6} {'err mm':>7} {'max mm':>7}"
    )
    print(header)
    print("-" * len(header))
    for report in reports:
        for key, row in report["lr"].items():
            stage = row["stage_ms_per_frame"]
            errors = f"{row['skin_error_mm_mean_of_max']:7.3f} {row['skin_error_mm_max']:7.3f}"
            stages = " ".join(
                f"{stage[name]:{width}.2f}"
                for name, width in (
                    ("local", 6),
                    ("rhs", 5),
                    ("solve", 6),
                    ("skin", 5),
                    ("setup", 6),
                )
            )
            print(
                f"{report['preset']:8} {key:18} {report['lr_free_nodes']:6d} {row['fps']:6.1f} "
                f"{row['ms_per_frame']:7.2f} {row['iterations_mean']:5.1f} "
                f"{row['iterations_max']:4d} {stages} {errors}"
            )
        for backend, row in report.get("hr", {}).items():
            stage = row["stage_ms_per_frame"]
            print(
                f"{report['preset']:8} HR theme/{backend:9} {row['free_nodes']:6d} "
                f"{row['s_per_frame']:.2f} s/frame, {row['iterations_mean']:.0f} iterations "
                f"(local {stage['local'] / 1e3:.2f} s, solve {stage['solve'] / 1e3:.2f} s), "
                f"factor {row['factor_s']:.1f} s, HR/LR time {row['hr_over_lr_time']:.0f}x"
            )
        if "hr_note" in report:
            print(f"{report['preset']:8} {report['hr_note']}")
    print(
        "stage columns: ms per frame (local = per-element projection kernel, rhs = Gᵀ·target "
        "assembly, solve = triangular solves, skin = embedding + rigid parts, setup = controls, "
        "actuations, prescribed nodes); err = skin error vs a converged solve"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "default"])
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--hr-frames", type=int, default=4)
    parser.add_argument(
        "--hr-proxy",
        action="store_true",
        help="without an HR mesh, time a BCC lattice with as many elements",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        default=None,
        help="splu and/or cholespy (default: every one installed)",
    )
    args = parser.parse_args(argv)
    backends = args.backends
    if backends is None:
        backends = ["splu"]
        try:
            import cholespy  # noqa: F401

            backends.append("cholespy")
        except ImportError:
            pass
    info = machine()
    reports = [
        bench_preset(p, args.frames, backends, args.hr_frames, args.hr_proxy) for p in args.presets
    ]
    info["load_average_after"] = os.getloadavg()
    print_table(reports, info)
    write_results("bench_simulator", {"machine": info, "presets": reports})


if __name__ == "__main__":
    main()
