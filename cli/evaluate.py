"""``python -m physface evaluate --model M --data DIR --out DIR``: the paper's Table 1
(Park et al. 2024) for every test and generalisation sequence — mean, median, std, max and
min of the per-frame mean error (mm) against the fine simulation's skin — for the embedded
skin, Gaussian RBF, MLS and the network (its ONNX model, run by ONNX Runtime), plus the
skin edges stretched beyond 2x and 5x their rest length at the mouth-open frames.

Writes to ``--out``: ``evaluation.json`` (table, per-frame errors, stretch counts),
``error_<sequence>.png`` (per-frame mean error of every method) and, unless
``--no-renders``, per rendered frame of each test sequence ``renders/<seq>_<frame>.png``:
columns embedded | network | fine simulation | network error (heat map, 0 to --cap-mm),
rows the face, the mouth and the eyes. Frames whose fine simulation did not converge are
left out and counted (details: nets/evaluate.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import make_parser, output_folder, positive, run_reporting_errors

REGION_TITLES = {"face": "face", "mouth": "mouth", "eyes": "eyes", "worst": "worst"}
SKIN_COLOUR = (0.86, 0.68, 0.58, 1.0)


def _landmarks(pairs, say):
    """The ICT face's 68 landmark vertices when the skin rows are ICT vertices and the
    data folder can be read; None otherwise (the close-ups then show the largest error)."""
    if pairs.rest.skin_vertices is None:
        return None
    from ..sim.errors import PhysFaceError
    from ..sim.face_model import load_face_model

    try:
        return load_face_model().landmarks
    except PhysFaceError as error:
        say(f"no mouth and eye close-ups (the face model is not readable: {error})")
        return None


def render_sheets(frames, out: Path, resolution: int, engine: str) -> list[Path]:
    """Per RenderFrame a contact sheet: one row per region, one column per skin."""
    if not frames:
        return []
    from ..blender.snapshot import SnapshotMesh, contact_sheet, render_views

    sheets = []
    work = out / "renders" / "parts"
    for item in frames:
        paths, labels = [], []
        for region, triangles in item.regions.items():
            for label, positions in item.columns.items():
                colours = item.colours.get(label)
                mesh = SnapshotMesh(
                    positions,
                    triangles,
                    color=SKIN_COLOUR,
                    vertex_colors=colours,
                )
                stem = f"{item.sequence}_{item.frame:04d}_{region}_{label.replace(' ', '_')}"
                paths += render_views(
                    [mesh], work, stem, ("front",), (resolution, resolution), samples=8,
                    engine=engine,
                )  # fmt: skip
                labels.append(f"{item.sequence} f{item.frame} {REGION_TITLES[region]}: {label}")
        sheet = out / "renders" / f"{item.sequence}_{item.frame:04d}.png"
        sheets.append(contact_sheet(paths, sheet, len(item.columns), labels))
    return sheets


def main(argv: list[str]) -> int:
    parser = make_parser("physface evaluate", __doc__)
    parser.add_argument("--model", required=True, help="the model folder (model.onnx, model.npz)")
    parser.add_argument("--data", required=True, help="a dataset folder or a pair folder")
    parser.add_argument("--out", required=True, help="folder for the table, plots and renders")
    parser.add_argument(
        "--frames", type=positive(int), default=3, help="rendered frames per test sequence"
    )
    parser.add_argument("--resolution", type=positive(int), default=400, help="pixels per render")
    parser.add_argument(
        "--cap-mm", type=positive(float), default=2.0, help="top of the heat map's scale"
    )
    parser.add_argument("--engine", default="BLENDER_WORKBENCH", help="or CYCLES")
    parser.add_argument("--no-renders", action="store_true", help="table and plots only")
    parser.add_argument(
        "--threads", type=positive(int), default=2, help="ONNX Runtime threads (default 2)"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from ..nets.evaluate import (
            evaluate,
            format_evaluation,
            format_stretch,
            jaw_openings,
            network_ratio,
            report,
            write_plots,
        )
        from ..nets.pairs import load_pairs
        from ..nets.runtime import ModelError, load_model

        out = output_folder(args.out)
        pairs = load_pairs(Path(args.data))
        network = load_model(args.model, expect_key=pairs.rest.key, threads=args.threads)
        if network.skin_count != pairs.rest.skin_count:
            raise ModelError(
                f"network model {args.model} predicts {network.skin_count} skin vertices, the "
                f"data {args.data} has {pairs.rest.skin_count}: use a model trained on this data"
            )
        names = [n for n, s in pairs.sequences.items() if s.split in ("test", "generalisation")]
        landmarks = None if args.no_renders else _landmarks(pairs, print)
        evaluation = evaluate(
            pairs,
            network,
            jaw_openings=jaw_openings(args.data, names),
            landmarks=landmarks,
            render_count=0 if args.no_renders else args.frames,
            cap_mm=args.cap_mm,
        )
        if not evaluation.sequences:
            print(f"{args.data} has no test or generalisation sequence with converged frames")
            return 1
        out.mkdir(parents=True, exist_ok=True)
        plots = write_plots(evaluation, out)
        sheets = render_sheets(evaluation.renders, out, args.resolution, args.engine)
        data = {"model": str(args.model), "data": str(args.data), "source": pairs.source,
                **report(evaluation), "plots": [str(p) for p in plots],
                "sheets": [str(p) for p in sheets]}  # fmt: skip
        from ..sim.cache import atomic_path

        with atomic_path(out / "evaluation.json") as tmp:
            tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        dropped = sum(r.dropped for r in evaluation.sequences.values())
        print(
            f"per-frame error (mm) against the fine simulation, mean over {evaluation.error_rows}; "
            f"statistics over frames ({dropped} frames left out: fine simulation not converged)"
        )
        print(format_evaluation(evaluation))
        for group in ("all test", *[n for n, r in evaluation.sequences.items()
                                    if r.split == "test"]):  # fmt: skip
            ratio = network_ratio(evaluation, group)
            if ratio is not None:
                print(f"network / embedded mean error, {group}: {ratio:.2f}x")
        stretch = format_stretch(evaluation)
        if stretch:
            print("skin edges stretched beyond 2x / 5x their rest length at mouth-open frames")
            print(stretch)
        for path in [out / "evaluation.json", *plots, *sheets]:
            print(path)
        return 0

    return run_reporting_errors(body)
