"""``python -m physface dataset-report --data DIR --out DIR``: the embedded error of a
paired dataset — per sequence the distance (mm) between the HR skin and the LR-embedded
skin, the error the super-resolution network must remove (Park et al. 2024 report 0.80 mm
mean on a face of 179.8 × 257.3 × 164.5 mm) — as a table, per-frame line plots (PNG,
drawn by ``sim.images``) and side-by-side renders of LR-embedded and HR skin.

Writes to ``--out``: ``report.json`` (table and per-frame errors), ``error_<seq>.png``
(mean and max per frame), ``error_all.png`` (mean per frame, every sequence) and
``renders/<seq>_sheet.png`` (rows: frames; columns: LR-embedded, HR, HR coloured by the
distance).
"""

import json
from pathlib import Path

import numpy as np

from ..sim.images import line_plot, write_png
from ..sim.metrics import PAPER_EMBEDDED, format_table
from . import make_parser, output_folder, positive, run_reporting_errors

PAPER_FACE_MM = (179.8, 257.3, 164.5)
EYEBALLS = ((21451, 23021), (23021, 24591))
STRETCH_FACTORS = (2.0, 5.0)  # skin edges longer than these multiples of their rest length

# --- the embedded error --------------------------------------------------------------------


def compare_sequences(data_dir: Path, factors=STRETCH_FACTORS) -> tuple[dict, dict]:
    """Per sequence with LR and HR frames: the LR-embedded skin's per-frame errors against
    the HR skin (``metrics.frame_errors``, mm), and per resolution and factor the largest
    number of visible skin edges stretched beyond that factor in any frame."""
    from ..sim.dataset_format import read_dataset, read_rest, read_sequence
    from ..sim.errors import DataError
    from ..sim.metrics import frame_errors, stretched_edges
    from ..sim.neighbours import triangle_edges

    meta = read_dataset(data_dir)
    rest = read_rest(data_dir)
    embedded, neutral = rest["embedded_vertices"], rest["neutral"]
    edges = triangle_edges(rest["skin_triangles"])
    errors, stretch = {}, {}
    for sequence in meta["sequences"]:
        name = sequence["name"]
        try:
            skins = {r: read_sequence(data_dir, name, r)["skin"] for r in ("lr", "hr")}
        except DataError:
            continue
        count = min(len(skin) for skin in skins.values())
        if not count:
            continue
        errors[name] = frame_errors(skins["lr"], skins["hr"], embedded)
        stretch[name] = {
            f"{r}>{f:g}x": int(stretched_edges(skin[:count], neutral, edges, f).max())
            for r, skin in skins.items()
            for f in factors
        }
    return errors, stretch


def error_table(errors: dict) -> list[dict]:
    """Rows like the paper's Table 1 (statistics of the per-frame mean error, mm), per
    sequence, then all themes and the paper's test split (anger + fear)."""
    from ..sim.metrics import PAPER_TEST_SPLIT
    from ..sim.metrics import error_table as table
    from ..sim.performances import THEMES

    return table(errors, (("themes", THEMES), ("anger+fear", PAPER_TEST_SPLIT)))


def format_stretch(stretch: dict) -> str:
    """Per sequence, the most stretched skin edges in any frame, one column per count."""
    columns = list(next(iter(stretch.values())))
    lines = [f"{'sequence':<14} " + " ".join(f"{c:>8}" for c in columns)]
    for name, counts in stretch.items():
        lines.append(f"{name:<14} " + " ".join(f"{counts[c]:>8}" for c in columns))
    return "\n".join(lines)


def bounding_boxes_mm(data_dir: Path) -> dict[str, list[float]]:
    """Extent (x, y, z) mm of the rest face region and of the embedded outer skin."""
    from ..sim.dataset_format import read_rest
    from ..sim.face_model import REGIONS
    from ..sim.metrics import visible_vertices

    rest = read_rest(data_dir)
    neutral, embedded = rest["neutral"], rest["embedded_vertices"]

    def extent(points):
        return [round(float(v), 1) for v in 10.0 * (points.max(axis=0) - points.min(axis=0))]

    return {
        "face region": extent(neutral[slice(*REGIONS["face"])]),
        "embedded outer skin": extent(neutral[visible_vertices(embedded)]),
        "paper face": list(PAPER_FACE_MM),
    }


# --- renders -------------------------------------------------------------------------------


def _heat(values_mm: np.ndarray, cap_mm: float) -> np.ndarray:
    """(V, 3) sRGB colours: blue (0) → yellow (cap/2) → red (≥ cap)."""
    t = np.clip(values_mm / cap_mm, 0.0, 1.0)[:, None]
    blue, yellow, red = (
        np.array(c, np.float32) for c in ((0.23, 0.35, 0.75), (0.95, 0.88, 0.35), (0.8, 0.1, 0.1))
    )
    low = blue + (yellow - blue) * np.clip(2 * t, 0, 1)
    return np.where(t < 0.5, low, yellow + (red - yellow) * np.clip(2 * t - 1, 0, 1))


def _pick_frames(error: np.ndarray, motion: np.ndarray, count: int) -> list[int]:
    """The frame of largest error, then the frames of largest motion at least a sixth of
    the sequence away from those already picked (short sequences: any frames)."""
    count = min(count, len(error))
    spacing = max(1, len(error) // 6)
    picked = [int(error.argmax())]
    for frame in np.argsort(-motion, kind="stable"):
        if len(picked) < count and all(abs(int(frame) - p) >= spacing for p in picked):
            picked.append(int(frame))
    picked += [f for f in range(len(error)) if f not in picked][: count - len(picked)]
    return sorted(picked)


def render_sheets(
    data_dir: Path,
    out_dir: Path,
    errors: dict,
    frames_per_sequence: int,
    views,
    resolution: int,
    cap_mm: float,
    engine: str,
) -> list[Path]:
    """Per sequence, a contact sheet of LR-embedded | HR | HR coloured by distance for the
    frame of largest error and the frame of largest HR motion (then evenly spaced ones)."""
    from ..blender.snapshot import SnapshotMesh, contact_sheet, render_views
    from ..sim.dataset_format import read_npz, read_sequence

    rest = read_npz(data_dir / "rest.npz")
    triangles, neutral = rest["skin_triangles"], rest["neutral"]
    eye_mask = np.zeros(len(neutral), bool)
    for start, stop in EYEBALLS:
        eye_mask[start:stop] = True
    eyes = rest["triangles"][eye_mask[rest["triangles"]].all(axis=1)]
    skin_colour, eye_colour = (0.86, 0.68, 0.58, 1.0), (0.92, 0.92, 0.94, 1.0)
    sheets = []
    for name, error in errors.items():
        lr = read_sequence(data_dir, name, "lr")["skin"]
        hr = read_sequence(data_dir, name, "hr")["skin"]
        count = len(error["mean"])
        motion = np.linalg.norm(hr[:count] - neutral, axis=2).mean(axis=1)
        frames = _pick_frames(error["mean"], motion, frames_per_sequence)
        paths, labels = [], []
        for frame in sorted(frames):
            distance = 10.0 * np.linalg.norm(hr[frame] - lr[frame], axis=1)
            meshes = {
                "lr": [
                    SnapshotMesh(lr[frame], triangles, color=skin_colour),
                    SnapshotMesh(lr[frame], eyes, color=eye_colour),
                ],
                "hr": [
                    SnapshotMesh(hr[frame], triangles, color=skin_colour),
                    SnapshotMesh(hr[frame], eyes, color=eye_colour),
                ],
                "error": [
                    SnapshotMesh(hr[frame], triangles, vertex_colors=_heat(distance, cap_mm)),
                    SnapshotMesh(hr[frame], eyes, color=eye_colour),
                ],
            }
            titles = {"lr": "LR-embedded", "hr": "HR", "error": f"distance 0-{cap_mm:g} mm"}
            for view in views:
                for kind, parts in meshes.items():
                    stem = f"{name}_{frame:04d}_{kind}"
                    paths += render_views(
                        parts,
                        out_dir / "renders" / "frames",
                        stem,
                        (view,),
                        (resolution, resolution),
                        samples=8,
                        engine=engine,
                    )
                    labels.append(f"{name} f{frame} {view} {titles[kind]}")
        sheets.append(contact_sheet(paths, out_dir / "renders" / f"{name}_sheet.png", 3, labels))
    return sheets


# --- the command -----------------------------------------------------------------------------


def write_report(
    data_dir: Path,
    out_dir: Path,
    renders: bool = True,
    frames_per_sequence=2,
    views=("front",),
    resolution=420,
    cap_mm=2.0,
    engine="BLENDER_WORKBENCH",
) -> dict:
    """Compute the table, write report.json and the plots (and the renders); returns the
    report as a dict with the written paths."""
    from ..sim.dataset_format import read_dataset

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    meta = read_dataset(data_dir)
    errors, stretch = compare_sequences(data_dir)
    rows = error_table(errors)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for name, error in errors.items():
        series = [("mean", error["frames"], error["mean"]), ("max", error["frames"], error["max"])]
        image = line_plot(series, f"{name}: HR vs LR-embedded skin", "frame", "MM")
        images.append(write_png(image, out_dir / f"error_{name}.png"))
    if errors:
        series = [(name, e["frames"], e["mean"]) for name, e in errors.items()]
        image = line_plot(
            series, "mean distance HR vs LR-embedded skin", "frame", "MM", size=(1100, 520)
        )
        images.append(write_png(image, out_dir / "error_all.png"))
    sheets = []
    if renders and errors:
        sheets = render_sheets(
            data_dir, out_dir, errors, frames_per_sequence, views, resolution, cap_mm, engine
        )
    report = {
        "data": str(data_dir),
        "preset": meta["preset"],
        "rig_key": meta["rig_key"],
        "bounding_boxes_mm": bounding_boxes_mm(data_dir),
        "paper_embedded_mm": PAPER_EMBEDDED,
        "table": rows,
        "stretched_skin_edges": stretch,
        "per_frame": {
            n: {k: e[k].round(4).tolist() for k in ("mean", "max", "mean_all")}
            for n, e in errors.items()
        },
        "plots": [str(p) for p in images],
        "sheets": [str(p) for p in sheets],
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str]) -> int:
    parser = make_parser("physface dataset-report", __doc__)
    parser.add_argument("--data", required=True, help="the dataset folder")
    parser.add_argument("--out", required=True, help="folder for the report")
    parser.add_argument(
        "--frames", type=positive(int), default=2, help="rendered frames per sequence"
    )
    parser.add_argument("--views", default="front", help="front, three_quarter, side")
    parser.add_argument("--resolution", type=positive(int), default=420, help="pixels per render")
    parser.add_argument(
        "--cap-mm", type=positive(float), default=2.0, help="top of the colour scale"
    )
    parser.add_argument("--engine", default="BLENDER_WORKBENCH", help="or CYCLES")
    parser.add_argument("--no-renders", action="store_true", help="table and plots only")
    args = parser.parse_args(argv)

    def body() -> int:
        report = write_report(
            Path(args.data),
            output_folder(args.out),
            not args.no_renders,
            args.frames,
            tuple(v.strip() for v in args.views.split(",")),
            args.resolution,
            args.cap_mm,
            args.engine,
        )
        print(
            f"embedded error (mm) of {args.data}, rig {report['rig_key']}: HR skin vs the "
            "LR-embedded skin over the embedded outer skin; statistics of per-frame means"
        )
        if not report["table"]:
            print("no sequence has both LR and HR frames yet")
        else:
            print(format_table(report["table"]))
            factors = " and ".join(f"{f:g}x" for f in STRETCH_FACTORS)
            print(f"skin edges stretched beyond {factors} their rest length (most in a frame)")
            print(format_stretch(report["stretched_skin_edges"]))
        boxes = report["bounding_boxes_mm"]
        for label, box in boxes.items():
            print(f"  {label:<20} {box[0]:.1f} × {box[1]:.1f} × {box[2]:.1f} mm")
        for path in report["plots"] + report["sheets"]:
            print(path)
        return 0

    return run_reporting_errors(body)
