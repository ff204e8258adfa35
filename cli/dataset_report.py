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

import argparse
import json
from pathlib import Path

import numpy as np

from ..sim.images import line_plot, write_png
from . import run_reporting_errors

PAPER_EMBEDDED_MM = 0.80
PAPER_FACE_MM = (179.8, 257.3, 164.5)
OUTER_SKIN_END = 11248  # ICT face + head_neck regions (face_model.REGIONS): the visible skin
EYEBALLS = ((21451, 23021), (23021, 24591))

# --- the embedded error --------------------------------------------------------------------


def embedded_errors(data_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per sequence with LR and HR frames: per-frame mean and max distance (mm) over the
    embedded outer skin (``mean``, ``max``), the mean over every embedded vertex
    (``mean_all``: also mouth and eye sockets), and the frames compared."""
    from ..sim.dataset import read_dataset, read_npz, read_sequence
    from ..sim.errors import DataError

    meta = read_dataset(data_dir)
    embedded = read_npz(data_dir / "rest.npz")["embedded_vertices"]
    outer = embedded[embedded < OUTER_SKIN_END]
    errors = {}
    for sequence in meta["sequences"]:
        name = sequence["name"]
        try:
            lr = read_sequence(data_dir, name, "lr")["skin"]
            hr = read_sequence(data_dir, name, "hr")["skin"]
        except DataError:
            continue
        count = min(len(lr), len(hr))
        if not count:
            continue
        outer_mm = 10.0 * np.linalg.norm(hr[:count, outer] - lr[:count, outer], axis=2)
        all_mm = 10.0 * np.linalg.norm(hr[:count, embedded] - lr[:count, embedded], axis=2)
        errors[name] = {
            "mean": outer_mm.mean(axis=1),
            "max": outer_mm.max(axis=1),
            "mean_all": all_mm.mean(axis=1),
            "frames": np.arange(count),
        }
    return errors


def _row(label: str, mean: np.ndarray, peak: np.ndarray, mean_all: np.ndarray) -> dict:
    return {
        "sequence": label,
        "frames": len(mean),
        "mean": float(mean.mean()),
        "median": float(np.median(mean)),
        "std": float(mean.std()),
        "max_frame_mean": float(mean.max()),
        "min_frame_mean": float(mean.min()),
        "max_vertex": float(peak.max()),
        "mean_all_embedded": float(mean_all.mean()),
    }


def error_table(errors: dict) -> list[dict]:
    """Rows like the paper's Table 1 (statistics of the per-frame mean error, mm), per
    sequence, then all themes and the paper's test split (anger + fear)."""
    rows = [_row(name, e["mean"], e["max"], e["mean_all"]) for name, e in errors.items()]
    from ..sim.performances import THEMES

    for label, names in (("themes", THEMES), ("anger+fear", ("anger", "fear"))):
        chosen = [errors[n] for n in names if n in errors]
        if chosen:
            rows.append(
                _row(
                    label,
                    *(np.concatenate([e[k] for e in chosen]) for k in ("mean", "max", "mean_all")),
                )
            )
    return rows


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'sequence':<14} {'frames':>6} {'mean':>6} {'median':>6} {'std':>6} {'max':>6} "
        f"{'min':>6} {'vertex max':>10} {'mean, all embedded':>18}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['sequence']:<14} {r['frames']:>6} {r['mean']:6.2f} {r['median']:6.2f} "
            f"{r['std']:6.2f} {r['max_frame_mean']:6.2f} {r['min_frame_mean']:6.2f} "
            f"{r['max_vertex']:10.2f} {r['mean_all_embedded']:18.2f}"
        )
    lines.append(
        f"{'paper (test)':<14} {445:>6} {0.80:6.2f} {0.77:6.2f} {0.13:6.2f} {1.40:6.2f} {0.55:6.2f}"
    )
    return "\n".join(lines)


def bounding_boxes_mm(data_dir: Path) -> dict[str, list[float]]:
    """Extent (x, y, z) mm of the rest face region and of the embedded outer skin."""
    from ..sim.dataset import read_npz

    rest = read_npz(data_dir / "rest.npz")
    neutral, embedded = rest["neutral"], rest["embedded_vertices"]

    def extent(points):
        return [round(float(v), 1) for v in 10.0 * (points.max(axis=0) - points.min(axis=0))]

    return {
        "face region": extent(neutral[:9409]),
        "embedded outer skin": extent(neutral[embedded[embedded < OUTER_SKIN_END]]),
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
    from ..operators.snapshot import SnapshotMesh, contact_sheet, render_views
    from ..sim.dataset import read_npz, read_sequence

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
    from ..sim.dataset import read_dataset

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    meta = read_dataset(data_dir)
    errors = embedded_errors(data_dir)
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
        "paper_embedded_mean_mm": PAPER_EMBEDDED_MM,
        "table": rows,
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
    parser = argparse.ArgumentParser(
        prog="physface dataset-report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="the dataset folder")
    parser.add_argument("--out", required=True, help="folder for the report")
    parser.add_argument("--frames", type=int, default=2, help="rendered frames per sequence")
    parser.add_argument("--views", default="front", help="front, three_quarter, side")
    parser.add_argument("--resolution", type=int, default=420, help="pixels per render")
    parser.add_argument("--cap-mm", type=float, default=2.0, help="top of the colour scale")
    parser.add_argument("--engine", default="BLENDER_WORKBENCH", help="or CYCLES")
    parser.add_argument("--no-renders", action="store_true", help="table and plots only")
    args = parser.parse_args(argv)

    def body() -> int:
        report = write_report(
            Path(args.data),
            Path(args.out),
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
        boxes = report["bounding_boxes_mm"]
        for label, box in boxes.items():
            print(f"  {label:<20} {box[0]:.1f} × {box[1]:.1f} × {box[2]:.1f} mm")
        for path in report["plots"] + report["sheets"]:
            print(path)
        return 0

    return run_reporting_errors(body)
