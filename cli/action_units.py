"""``python -m physface action-units --preset default [--out DIR]``: the rig's range against
real faces. Each action unit of ``sim/data/action_units.toml`` is played alone from rest
(both sides, jaw closed) and its key point read on the skin, next to the published range
and its source; then every muscle at 1 with the jaw at its opening limit, counting the
inverted elements. Prints the table and writes ``action_units_<preset>.json`` to ``--out``."""

import json

from ..sim.data_paths import data_argument
from ..sim.simulator import Material
from . import make_parser, output_folder, run_reporting_errors


def _describe(material: Material) -> str:
    muscles = (
        f"muscles {material.passive_muscle_ratio:g}x flesh relaxed, "
        f"{material.muscle_stiffness_ratio:g}x active"
        if material.passive_muscle_ratio is not None
        else f"muscles {material.muscle_stiffness_ratio:g}x flesh"
    )
    return muscles + (", forehead sliding" if material.forehead_sliding else ", forehead fixed")


def main(argv: list[str]) -> int:
    parser = make_parser("physface action-units", __doc__)
    parser.add_argument("--preset", default="default", help="rig preset (tiny, default, paper)")
    parser.add_argument("--out", default="out/action_units", help="output folder")
    parser.add_argument(
        "--data", type=data_argument, help="data folder (default: PHYSFACE_DATA or ../shared/data)"
    )
    parser.add_argument(
        "--fixed-forehead", action="store_true",
        help="every bone node fixed (by default the forehead's bone nodes glide along the "
        "bone: sim/sliding.py)",
    )  # fmt: skip
    parser.add_argument(
        "--passive-muscle-ratio", type=float, default=Material.passive_muscle_ratio,
        help="a relaxed muscle this many times stiffer than flesh, stiffening with its "
        "activation to --muscle-stiffness-ratio; 0: always at that ratio (default %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--muscle-stiffness-ratio", type=float, default=Material.muscle_stiffness_ratio,
        help="an (active) muscle's stiffness over flesh's (default %(default)g)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def body() -> int:
        from ..sim.calibration import format_actions, full_strength_inversions, measure_actions
        from ..sim.rig import load_rig

        material = Material(
            forehead_sliding=not args.fixed_forehead,
            passive_muscle_ratio=args.passive_muscle_ratio or None,
            muscle_stiffness_ratio=args.muscle_stiffness_ratio,
        )
        out = output_folder(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rig = load_rig(args.preset, args.data, with_hr=False)
        results = measure_actions(rig, material=material)
        print(f"preset {args.preset}, {_describe(material)}:")
        print("key-point travel at full activation (mm)")
        print(format_actions(results))
        inverted, elements = full_strength_inversions(rig, material)
        print(f"every muscle at 1, jaw at its opening limit: {inverted} of {elements} "
              "elements inverted")  # fmt: skip
        report = {
            "preset": args.preset,
            "material": {"forehead_sliding": material.forehead_sliding,
                         "passive_muscle_ratio": material.passive_muscle_ratio,
                         "muscle_stiffness_ratio": material.muscle_stiffness_ratio},
            "actions": [
                {"name": r.target.name, "units": r.target.units, "key_point": r.target.key_point,
                 "measure": r.target.measure, "value_mm": r.value_mm, "along_mm": r.along_mm,
                 "displacement_mm": r.displacement_mm.tolist(), "range_mm": r.target.range_mm,
                 "verdict": r.verdict, "source": r.target.source}
                for r in results
            ],
            "full_strength_inverted_elements": inverted,
            "elements": elements,
        }  # fmt: skip
        changed = material != Material()
        path = out / f"action_units_{args.preset}{'_calibration' if changed else ''}.json"
        path.write_text(json.dumps(report, indent=2))
        print(path)
        return 0

    return run_reporting_errors(body)
