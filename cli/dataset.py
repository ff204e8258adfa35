"""``python -m physface dataset --preset default --out DIR``: generate the paired LR/HR
dataset (or resume it where it stopped) and print per-sequence timings.

The same controls (four themes and the §5.3 sequences) are simulated at low and high
resolution; the layout is README "Dataset". Sequences spread over ``--workers`` processes;
an interrupted run continues from its last committed chunk with ``--out`` the same folder.
``--max-minutes`` stops cleanly after the chunk that passes the limit.
"""

import time

from ..sim.data_paths import data_argument
from . import make_parser, output_folder, positive, run_reporting_errors

INTERRUPTED_LINE = "interrupted; the frames done are kept; run the same command to resume"


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else None


def status_table(rows: list[dict]) -> str:
    """One line per sequence and resolution: frames done/total, seconds per frame and the
    frames that reached the solver's tolerance; a summary line per resolution."""
    lines = [f"{'sequence':<14} {'res':<3} {'frames':>9} {'s/frame':>8} {'converged':>9}  state"]
    for row in rows:
        per_frame = row["seconds_per_frame"]
        per_frame = f"{per_frame:8.3f}" if per_frame is not None else f"{'-':>8}"
        state = "complete" if row["complete"] else ("partial" if row["done"] else "pending")
        warnings = f"  {row['warnings']} clamp warnings" if row["warnings"] else ""
        lines.append(
            f"{row['sequence']:<14} {row['resolution']:<3} "
            f"{row['done']:>4}/{row['frames']:<4} {per_frame} {row['converged']:>9}  "
            f"{state}{warnings}"
        )
    for resolution in ("lr", "hr"):
        chosen = [r for r in rows if r["resolution"] == resolution and r["seconds_per_frame"]]
        if chosen:
            done = sum(r["done"] for r in chosen)
            seconds = sum(r["done"] * r["seconds_per_frame"] for r in chosen)
            total = sum(r["frames"] for r in rows if r["resolution"] == resolution)
            converged = sum(r["converged"] for r in chosen)
            lines.append(
                f"{resolution.upper()}: {done}/{total} frames, {seconds / done:.3f} s/frame "
                f"(simulation in one process), {seconds / 60:.1f} process-minutes; "
                f"{converged}/{done} ({100.0 * converged / done:.0f} %) reached the tolerance"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from ..sim.dataset import DatasetSettings

    parser = make_parser("physface dataset", __doc__)
    parser.add_argument("--preset", default="default", help="rig preset: tiny, default, paper")
    parser.add_argument("--out", required=True, help="dataset folder (created or resumed)")
    parser.add_argument(
        "--data", type=data_argument, help="data folder (default: PHYSFACE_DATA or ../shared/data)"
    )
    parser.add_argument("--resolutions", default="lr,hr", help="lr, hr or lr,hr")
    parser.add_argument("--sequences", help="comma-separated subset (default: all)")
    parser.add_argument("--frames", type=int, help="length of every sequence (default: own)")
    parser.add_argument("--seed", type=int, default=DatasetSettings.seed)
    parser.add_argument(
        "--variants", type=int, default=DatasetSettings.variants, help="seeded variants per theme"
    )
    parser.add_argument(
        "--tolerance", type=float, default=DatasetSettings.tolerance, help="relative residual"
    )
    parser.add_argument("--max-iterations", type=int, default=DatasetSettings.max_iterations)
    parser.add_argument(
        "--chunk-frames", type=int, default=DatasetSettings.chunk_frames, help="frames per commit"
    )
    parser.add_argument("--workers", type=int, help="processes (default: one per core)")
    parser.add_argument("--max-minutes", type=positive(float), help="stop cleanly after this long")
    parser.add_argument("--status", action="store_true", help="only print the folder's state")
    args = parser.parse_args(argv)

    def body() -> int:
        from ..sim.dataset_format import dataset_status

        out = output_folder(args.out)
        if args.status:
            print(status_table(dataset_status(out)))
            return 0
        # Every setting is checked here, before anything is loaded or written.
        settings = DatasetSettings(
            preset=args.preset,
            seed=args.seed,
            variants=args.variants,
            frames=args.frames,
            tolerance=args.tolerance,
            max_iterations=args.max_iterations,
            chunk_frames=args.chunk_frames,
        )
        from ..sim.dataset import generate_dataset, machine_description

        deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
        run = generate_dataset(
            out,
            settings,
            _names(args.resolutions),
            _names(args.sequences),
            args.workers,
            progress=True,
            deadline=deadline,
            data_folder=args.data,
        )
        print(f"dataset {run.out_dir}  rig {run.meta['rig_key']}  ({machine_description()})")
        print(status_table(dataset_status(out)))
        print(f"wall time of this run {run.seconds / 60:.1f} min")
        unfinished = [f"{t['sequence']} {t['resolution']}" for t in run.tasks if not t["complete"]]
        if unfinished:
            print(f"unfinished: {', '.join(unfinished)}; run the same command again to resume")
        return 0

    return run_reporting_errors(body, interrupted=INTERRUPTED_LINE)
