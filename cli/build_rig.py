"""``python -m physface build-rig --preset default``: build (or load) a rig and report it."""

import time

from ..sim.data_paths import data_argument
from . import make_parser, run_reporting_errors


def describe(rig) -> str:
    """Counts and quality of a rig, one line per mesh (for the CLI and notes)."""
    lines = [f"rig {rig.key}  preset {rig.preset}  muscles {len(rig.muscle_names)}"]
    for name in ("lr", "hr"):
        mesh = getattr(rig, name)
        if mesh is None:
            continue
        labels = mesh.node_labels
        lines.append(
            f"  {name.upper()}: {mesh.vertex_count:>8,} vertices {mesh.element_count:>9,} elements"
            f"  min dihedral {mesh.min_dihedral_deg():5.1f}°  min volume {mesh.volumes().min():.2e}"
            f" cm³  skull/jaw nodes {(labels == 1).sum():,}/{(labels == 2).sum():,}"
        )
    if rig.hr is not None:
        lines.append(f"  HR/LR element ratio {rig.hr.element_count / rig.lr.element_count:.1f}")
    if rig.build_seconds:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in rig.build_seconds.items())
        lines.append(f"  build: {stages}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = make_parser("physface build-rig", __doc__)
    parser.add_argument("--preset", default="default", help="tiny, default or paper")
    parser.add_argument(
        "--data", type=data_argument, help="data folder (default: PHYSFACE_DATA or ../shared/data)"
    )
    parser.add_argument("--rebuild", action="store_true", help="ignore a cached rig")
    args = parser.parse_args(argv)

    def body() -> int:
        from tqdm import tqdm

        from ..sim.rig import load_rig

        bar = tqdm(total=6, desc="build-rig", unit="stage", leave=True)

        def progress(stage: str) -> None:
            bar.set_postfix_str(stage)
            bar.update(1)

        start = time.perf_counter()
        rig = load_rig(args.preset, args.data, progress=progress, rebuild=args.rebuild)
        bar.close()
        print(describe(rig))
        print(f"  wall time {time.perf_counter() - start:.1f} s")
        return 0

    return run_reporting_errors(body)
