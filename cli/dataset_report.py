"""``python -m physface dataset-report --data DIR --out DIR``: the embedded error of a
paired dataset — per sequence the distance (mm) between the HR skin and the LR-embedded
skin, the error the super-resolution network must remove (Park et al. 2024 report 0.80 mm
mean on a face of 179.8 × 257.3 × 164.5 mm) — as a table, per-frame line plots (PNG,
drawn with numpy and zlib) and side-by-side renders of LR-embedded and HR skin.

Writes to ``--out``: ``report.json`` (table and per-frame errors), ``error_<seq>.png``
(mean and max per frame), ``error_all.png`` (mean per frame, every sequence) and
``renders/<seq>_sheet.png`` (rows: frames; columns: LR-embedded, HR, HR coloured by the
distance).
"""

import argparse
import json
import struct
import zlib
from pathlib import Path

import numpy as np

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


# --- a tiny PNG line plot ------------------------------------------------------------------

# 5×7 bitmap glyphs, one byte per row (bit 4 = leftmost column); text is drawn upper case.
_FONT = {
    "0": "0e11131519110e",
    "1": "040c040404040e",
    "2": "0e11010204081f",
    "3": "1f02040201110e",
    "4": "02060a121f0202",
    "5": "1f101e0101110e",
    "6": "0608101e11110e",
    "7": "1f010204080808",
    "8": "0e11110e11110e",
    "9": "0e11110f01020c",
    "A": "0e11111f111111",
    "B": "1e11111e11111e",
    "C": "0e11101010110e",
    "D": "1c12111111121c",
    "E": "1f10101e10101f",
    "F": "1f10101e101010",
    "G": "0e11101711110f",
    "H": "1111111f111111",
    "I": "0e04040404040e",
    "J": "0702020202120c",
    "K": "11121418141211",
    "L": "1010101010101f",
    "M": "111b1515111111",
    "N": "11111915131111",
    "O": "0e11111111110e",
    "P": "1e11111e101010",
    "Q": "0e11111115120d",
    "R": "1e11111e141211",
    "S": "0f10100e01011e",
    "T": "1f040404040404",
    "U": "1111111111110e",
    "V": "11111111110a04",
    "W": "1111111515150a",
    "X": "11110a040a1111",
    "Y": "11110a04040404",
    "Z": "1f01020408101f",
    ".": "00000000000c0c",
    "-": "0000001f000000",
    ":": "000c0c000c0c00",
    "(": "02040808080402",
    ")": "08040202020408",
    "/": "00010204081000",
    "_": "0000000000001f",
    "%": "18190204081303",
    "=": "00001f001f0000",
    "+": "0004041f040400",
    ",": "000000000c0408",
    " ": "00000000000000",
}
COLOURS = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
)


def _text(image: np.ndarray, x: int, y: int, text: str, colour=(0, 0, 0), scale: int = 2):
    """Draw ``text`` with its top-left corner at pixel (x, y)."""
    for k, char in enumerate(text.upper()):
        rows = bytes.fromhex(_FONT.get(char, _FONT[" "]))
        for r, bits in enumerate(rows):
            for c in range(5):
                if bits & (16 >> c):
                    top, left = y + r * scale, x + (k * 6 + c) * scale
                    image[max(top, 0) : top + scale, max(left, 0) : left + scale] = colour


def _text_width(text: str, scale: int = 2) -> int:
    return len(text) * 6 * scale


def _line(image: np.ndarray, x0, y0, x1, y1, colour, width: int = 2):
    """A straight segment by dense sampling (``width`` pixels square pen)."""
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, steps)).astype(int)
    ys = np.rint(np.linspace(y0, y1, steps)).astype(int)
    h, w = image.shape[:2]
    for dx in range(width):
        for dy in range(width):
            keep = (xs + dx >= 0) & (xs + dx < w) & (ys + dy >= 0) & (ys + dy < h)
            image[ys[keep] + dy, xs[keep] + dx] = colour


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / max(count, 1)
    power = 10.0 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


def _format_tick(value: float, step: float) -> str:
    decimals = max(0, -int(np.floor(np.log10(step)))) if step < 1 else 0
    return f"{value:.{decimals}f}"


def line_plot(
    series: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    xlabel: str,
    ylabel: str,
    size=(960, 480),
) -> np.ndarray:
    """(H, W, 3) uint8 image of (label, x, y) lines with axes, ticks and a legend."""
    width, height = size
    left, right, top, bottom = 90, 24, 56, 64
    image = np.full((height, width, 3), 255, np.uint8)
    xs = np.concatenate([s[1] for s in series])
    ys = np.concatenate([s[2] for s in series])
    x_min, x_max = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    y_step = _nice_step(float(ys.max()) or 1.0)
    y_max = y_step * np.ceil(float(ys.max()) / y_step + 1e-9) or y_step
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x):
        return left + (np.asarray(x, float) - x_min) / (x_max - x_min) * plot_w

    def py(y):
        return top + plot_h - np.asarray(y, float) / y_max * plot_h

    grey, dark = (225, 225, 225), (60, 60, 60)
    for value in np.arange(0.0, y_max + y_step / 2, y_step):
        y = float(py(value))
        _line(image, left, y, left + plot_w, y, grey, 1)
        label = _format_tick(value, y_step)
        _text(image, left - 8 - _text_width(label), int(y) - 7, label, dark)
    x_step = _nice_step(x_max - x_min, 8)
    for value in np.arange(np.ceil(x_min / x_step) * x_step, x_max + 1e-9, x_step):
        x = float(px(value))
        _line(image, x, top + plot_h, x, top + plot_h + 6, dark, 2)
        label = _format_tick(value, x_step)
        _text(image, int(x) - _text_width(label) // 2, top + plot_h + 12, label, dark)
    _line(image, left, top, left, top + plot_h, dark, 2)
    _line(image, left, top + plot_h, left + plot_w, top + plot_h, dark, 2)
    for k, (_, x, y) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        points_x, points_y = px(x), py(y)
        for i in range(len(points_x) - 1):
            _line(image, points_x[i], points_y[i], points_x[i + 1], points_y[i + 1], colour, 2)
        if len(points_x) == 1:
            _line(image, points_x[0] - 3, points_y[0], points_x[0] + 3, points_y[0], colour, 3)
    # Legend in a white box at the top right, over the lines.
    legend_w = max(_text_width(s[0]) for s in series) + 52
    legend_x, legend_y = left + plot_w - legend_w - 6, top + 6
    image[legend_y : legend_y + 20 * len(series) + 8, legend_x : legend_x + legend_w] = 255
    for k, (label, _, _) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        row = legend_y + 6 + 20 * k
        _line(image, legend_x + 8, row + 6, legend_x + 34, row + 6, colour, 3)
        _text(image, legend_x + 42, row, label, colour)
    _text(image, left, 16, title, (0, 0, 0))
    _text(image, left + plot_w // 2 - _text_width(xlabel) // 2, height - 26, xlabel, dark)
    _text(image, 8, 16 + 22, ylabel, dark)
    return image


def write_png(image: np.ndarray, path: Path) -> Path:
    """Write an (H, W, 3) uint8 image as an RGB PNG (zlib, no filter)."""
    height, width = image.shape[:2]
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


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
