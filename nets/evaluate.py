"""Evaluation of the super-resolution network against the paper's baselines (Park et al.
2024 §5.2, Table 1), numpy only at this level (the network runs through
``nets.runtime.load_model``'s ONNX Runtime model; no torch, no bpy).

For every ``test`` and ``generalisation`` sequence of a pair set, each method — the
embedded skin, Gaussian RBF, MLS (``nets.baselines``) and the network — maps every LR
frame to skin positions; per frame the error is the mean distance (mm) to the fine
simulation's skin over the error rows (for our face: the visible skin, ICT face and
head/neck, as ``sim.metrics``; for foreign data: every skin vertex), and a sequence's row
of the table gives the mean, median, std, max and min of those per-frame means (Table 1),
with the largest single-vertex error. Groups ``test`` and ``generalisation`` pool the
frames of their sequences. Frames whose fine simulation did not converge are left out (as
in training) and counted.

Also: the number of skin edges stretched beyond 2× and 5× their rest length
(``sim.metrics.stretched_edges``) at the mouth-open frames — frames where the jaw control
opens at least half of the sequence's widest opening (face data), else the sixth of the
frames with the largest fine-skin motion — for embedded, network and the fine skin; and
the numpy part of the renders: which frames, per-vertex positions of each column
(embedded | network | fine | network error as a heat map), the heat-map colours, and the
triangles of the close-ups of the mouth and the eyes (``render_frames``). The rendering
itself (bpy) is ``cli/evaluate.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sim.metrics import (
    VISIBLE_SKIN_END,
    error_table,
    stretched_edges,
    vertex_errors_mm,
)

METHODS = ("embedded", "rbf", "mls", "network")
LABELS = {"embedded": "embedded", "rbf": "Gaussian RBF", "mls": "MLS", "network": "network"}
SPLITS = ("test", "generalisation")
STRETCH_FACTORS = (2.0, 5.0)
HEAT_CAP_MM = 2.0
# Multi-PIE landmark numbers (0-based) of the ICT face: eyes 36-47, mouth 48-67.
EYE_LANDMARKS = tuple(range(36, 48))
MOUTH_LANDMARKS = tuple(range(48, 68))
MOUTH_CORNERS = (48, 54)
OUTER_EYE_CORNERS = (36, 45)


@dataclass
class SequenceEvaluation:
    """One sequence: its per-frame errors per method (``sim.metrics.frame_errors`` keys),
    the kept frame numbers, how many were dropped, the mouth-open frames and the stretched
    edge counts there (method → {"2x": [...], "5x": [...]} per mouth-open frame)."""

    name: str
    split: str
    frames: np.ndarray  # (F,) frame numbers of the sequence that were evaluated
    dropped: int
    errors: dict[str, dict[str, np.ndarray]]
    mouth_open: list[int] = field(default_factory=list)  # frame numbers
    mouth_open_rule: str = ""
    stretch: dict[str, dict[str, list[int]]] = field(default_factory=dict)


@dataclass
class RenderFrame:
    """One frame to render: columns (label → (M, 3) cm skin positions), per-column vertex
    colours (label → (M, 3) sRGB or None) and regions (name → (T', 3) skin triangles)."""

    sequence: str
    frame: int
    columns: dict[str, np.ndarray]
    colours: dict[str, np.ndarray | None]
    regions: dict[str, np.ndarray]
    why: str


@dataclass
class Evaluation:
    sequences: dict[str, SequenceEvaluation]
    table: list[dict]  # rows with "method", "split" and sim.metrics.summarise's keys
    renders: list[RenderFrame]
    error_rows: str  # what the errors are averaged over


# --- what is measured -----------------------------------------------------------------------


def error_rows(rest) -> tuple[np.ndarray, str]:
    """Skin rows the errors average over, and their description: the visible skin of the
    ICT face (rows whose ICT vertex is below ``VISIBLE_SKIN_END``) or every row."""
    if rest.skin_vertices is not None:
        rows = np.flatnonzero(np.asarray(rest.skin_vertices) < VISIBLE_SKIN_END)
        if len(rows):
            return rows, "visible skin (ICT face and head/neck)"
    return np.arange(len(rest.skin_rest)), "every skin vertex"


def sequence_errors(predicted: np.ndarray, reference: np.ndarray, rows: np.ndarray) -> dict:
    """Per-frame errors (mm) of skins (F, M, 3) against the fine skins: ``mean`` and
    ``max`` over ``rows``, ``mean_all`` over every row, ``frames``."""
    chosen = vertex_errors_mm(predicted, reference, rows)
    every = vertex_errors_mm(predicted, reference, np.arange(predicted.shape[1]))
    return {
        "mean": chosen.mean(axis=1),
        "max": chosen.max(axis=1),
        "mean_all": every.mean(axis=1),
        "frames": np.arange(len(chosen)),
    }


def predictors(rest, network: Callable | None) -> dict[str, Callable]:
    """Method → per-frame callable (LR positions (N, 3) → skin positions (M, 3))."""
    from .baselines import Embedded, GaussianRBF, MovingLeastSquares

    methods = {
        "embedded": Embedded(rest),
        "rbf": GaussianRBF(rest),
        "mls": MovingLeastSquares(rest),
    }
    if network is not None:
        methods["network"] = network
    return methods


def mouth_open_frames(
    frames: np.ndarray, fine: np.ndarray, skin_rest: np.ndarray, jaw_opening=None
) -> tuple[list[int], str]:
    """Indices into ``frames`` of the mouth-open frames and the rule that chose them: the
    jaw opening (degrees per frame of the sequence) at least half its largest value (and
    over 1°), else the sixth of the frames with the largest mean fine-skin motion."""
    if jaw_opening is not None and len(jaw_opening):
        opening = np.asarray(jaw_opening, float)[frames]
        peak = float(opening.max()) if len(opening) else 0.0
        if peak > 1.0:
            chosen = np.flatnonzero(opening >= 0.5 * peak)
            return chosen.tolist(), f"jaw opening >= {0.5 * peak:.1f} deg (half the largest)"
    motion = np.linalg.norm(fine - skin_rest, axis=2).mean(axis=1)
    count = max(1, len(frames) // 6)
    chosen = np.sort(np.argsort(-motion, kind="stable")[:count])
    return chosen.tolist(), "the sixth of the frames with the largest fine-skin motion"


def jaw_openings(data_dir: str | Path, names) -> dict[str, np.ndarray]:
    """Jaw opening (deg) per frame of the named sequences of a face dataset folder (its
    ``controls.npz``); empty for other folders or sequences without controls."""
    from ..sim.dataset_format import read_npz

    folder = Path(data_dir)
    found = {}
    if not (folder / "dataset.json").is_file():
        return found
    for name in names:
        try:
            found[name] = np.asarray(read_npz(folder / name / "controls.npz")["jaw"])[:, 0]
        except (OSError, KeyError, ValueError):
            continue
    return found


# --- renders (numpy part) -------------------------------------------------------------------


def heat_colours(values_mm: np.ndarray, cap_mm: float = HEAT_CAP_MM) -> np.ndarray:
    """(V, 3) sRGB: blue (0 mm) → yellow (cap/2) → red (≥ cap)."""
    t = np.clip(np.asarray(values_mm, np.float32) / cap_mm, 0.0, 1.0)[:, None]
    blue, yellow, red = (
        np.array(c, np.float32) for c in ((0.23, 0.35, 0.75), (0.95, 0.88, 0.35), (0.8, 0.1, 0.1))
    )
    low = blue + (yellow - blue) * np.clip(2 * t, 0, 1)
    return np.where(t < 0.5, low, yellow + (red - yellow) * np.clip(2 * t - 1, 0, 1))


def _ball_triangles(skin_rest, triangles, centre, radius) -> np.ndarray:
    inside = np.linalg.norm(skin_rest - centre, axis=1) <= radius
    return triangles[inside[triangles].all(axis=1)]


def close_up_regions(rest, landmarks=None, worst_row: int | None = None) -> dict[str, np.ndarray]:
    """Triangles of the whole skin and of the close-ups (rest positions decide, so a
    close-up follows the skin when it moves). With ICT ``landmarks`` (68 vertex ids) and
    the rest's ``skin_vertices``: the mouth (a ball around the lip landmarks reaching 0.8 of
    the mouth width beyond their centre) and the eyes (both, a ball of 0.65 of the outer
    eye-corner distance); otherwise one close-up around ``worst_row`` (the largest
    embedded error), a ball of a sixth of the skin's extent."""
    skin_rest = np.asarray(rest.skin_rest)
    triangles = np.asarray(rest.skin_triangles)
    regions = {"face": triangles}
    rows = {}
    if landmarks is not None and rest.skin_vertices is not None:
        where = {int(v): i for i, v in enumerate(np.asarray(rest.skin_vertices))}
        rows = {n: where[int(v)] for n, v in enumerate(landmarks) if int(v) in where}
    needed = set(MOUTH_CORNERS) | set(OUTER_EYE_CORNERS)
    if needed <= rows.keys():
        mouth = skin_rest[[rows[n] for n in MOUTH_LANDMARKS if n in rows]]
        width = np.linalg.norm(skin_rest[rows[48]] - skin_rest[rows[54]])
        regions["mouth"] = _ball_triangles(skin_rest, triangles, mouth.mean(0), 0.8 * width)
        eyes = skin_rest[[rows[n] for n in EYE_LANDMARKS if n in rows]]
        span = np.linalg.norm(skin_rest[rows[36]] - skin_rest[rows[45]])
        regions["eyes"] = _ball_triangles(skin_rest, triangles, eyes.mean(0), 0.65 * span)
    elif worst_row is not None:
        extent = float(np.max(skin_rest.max(0) - skin_rest.min(0)))
        regions["worst"] = _ball_triangles(skin_rest, triangles, skin_rest[worst_row], extent / 6)
    return {name: tri for name, tri in regions.items() if len(tri)}


def ict_close_ups(face, rest: np.ndarray, parts=()) -> dict[str, np.ndarray]:
    """``close_up_regions`` of the whole ICT mesh at positions ``rest`` (V, 3): the visible
    skin (face and head) with the named ``face_model.REGIONS`` ``parts`` drawn along
    (eyeballs, teeth), the close-ups chosen by the ICT landmarks."""
    from types import SimpleNamespace

    from ..sim.face_model import REGIONS

    skin = np.arange(REGIONS["face"][0], REGIONS["head_neck"][1])
    shown = np.concatenate([skin, *(np.arange(*REGIONS[part]) for part in parts)])
    whole = SimpleNamespace(skin_rest=rest, skin_triangles=face.triangles(shown),
                            skin_vertices=np.arange(len(rest)))  # fmt: skip
    return close_up_regions(whole, face.landmarks)


def pick_render_frames(evaluation: SequenceEvaluation, count: int) -> list[tuple[int, str]]:
    """Up to ``count`` indices into the evaluated frames with why: the widest mouth
    opening (largest fine motion among the mouth-open frames), the largest embedded error,
    the largest network error, then the largest errors of the network."""
    errors = evaluation.errors
    picks: list[tuple[int, str]] = []

    def add(index: int, why: str) -> None:
        if len(picks) < count and all(index != p for p, _ in picks):
            picks.append((int(index), why))

    if evaluation.mouth_open:
        add(evaluation.mouth_open[len(evaluation.mouth_open) // 2], "mouth open")
    add(int(np.argmax(errors["embedded"]["mean"])), "largest embedded error")
    key = "network" if "network" in errors else "embedded"
    for index in np.argsort(-errors[key]["mean"], kind="stable"):
        add(int(index), f"largest {LABELS[key]} error")
    return sorted(picks)


# --- the evaluation -------------------------------------------------------------------------


def evaluate(
    pairs,
    network: Callable | None,
    *,
    jaw_openings: Mapping[str, np.ndarray] | None = None,
    landmarks=None,
    render_count: int = 3,
    cap_mm: float = HEAT_CAP_MM,
    splits=SPLITS,
    log: Callable[[str], None] = print,
) -> Evaluation:
    """Table 1 for every sequence of ``splits`` in ``pairs`` (a ``PairSet``), with the
    network (``nets.runtime.load_model(...)`` or any callable LR (N, 3) → skin (M, 3); None:
    baselines only), the stretched-edge counts at the mouth-open frames and
    ``render_count`` frames to render per test sequence (heat map 0..``cap_mm``).
    ``jaw_openings``: sequence name → jaw opening (deg) per frame (``jaw_openings``)."""
    from ..sim.neighbours import triangle_edges

    rest = pairs.rest
    rows, rows_text = error_rows(rest)
    methods = predictors(rest, network)
    edges = triangle_edges(np.asarray(rest.skin_triangles))
    skin_rest = np.asarray(rest.skin_rest, np.float32)
    results: dict[str, SequenceEvaluation] = {}
    renders: list[RenderFrame] = []
    for name, sequence in pairs.sequences.items():
        if sequence.split not in splits:
            continue
        keep = np.flatnonzero(np.asarray(sequence.converged, bool))
        dropped = len(sequence.converged) - len(keep)
        if not len(keep):
            log(f"{name}: no frame whose fine simulation converged; left out")
            continue
        fine = np.asarray(sequence.skin, np.float32)[keep]
        lr = np.asarray(sequence.lr, np.float32)[keep]
        predicted = {m: np.stack([f(frame) for frame in lr]) for m, f in methods.items()}
        errors = {m: sequence_errors(p, fine, rows) for m, p in predicted.items()}
        jaw = None if jaw_openings is None else jaw_openings.get(name)
        open_idx, rule = mouth_open_frames(keep, fine, skin_rest, jaw)
        stretch = {}
        for label, skins in (("embedded", predicted["embedded"]),
                             ("network", predicted.get("network")), ("fine", fine)):  # fmt: skip
            if skins is None:
                continue
            stretch[label] = {
                f"{f:g}x": stretched_edges(skins[open_idx], skin_rest, edges, f).tolist()
                for f in STRETCH_FACTORS
            }
        result = SequenceEvaluation(
            name=name, split=sequence.split, frames=keep, dropped=dropped, errors=errors,
            mouth_open=[int(keep[i]) for i in open_idx], mouth_open_rule=rule, stretch=stretch,
        )  # fmt: skip
        results[name] = result
        if sequence.split == "test" and render_count > 0:
            local = SequenceEvaluation(**{**result.__dict__, "mouth_open": open_idx})
            renders += _render_frames(
                rest, name, local, predicted, fine, landmarks, render_count, cap_mm
            )
    table = _table(results)
    return Evaluation(results, table, renders, rows_text)


def _render_frames(
    rest, name, evaluation, predicted, fine, landmarks, count, cap_mm
) -> list[RenderFrame]:
    frames = []
    worst = int(np.argmax(np.linalg.norm(predicted["embedded"] - fine, axis=2).mean(axis=0)))
    regions = close_up_regions(rest, landmarks, worst)
    for index, why in pick_render_frames(evaluation, count):
        columns = {"embedded": predicted["embedded"][index]}
        if "network" in predicted:
            columns["network"] = predicted["network"][index]
        columns["fine"] = fine[index]
        colours: dict[str, np.ndarray | None] = {label: None for label in columns}
        key = "network" if "network" in predicted else "embedded"
        distance = 10.0 * np.linalg.norm(predicted[key][index] - fine[index], axis=1)
        columns[f"{key} error"] = predicted[key][index]
        colours[f"{key} error"] = heat_colours(distance, cap_mm)
        frame = int(evaluation.frames[index])
        frames.append(RenderFrame(name, frame, columns, colours, regions, why))
    return frames


def _table(results: Mapping[str, SequenceEvaluation]) -> list[dict]:
    """Per method: a row per sequence, then per split one over its sequences' frames."""
    rows = []
    methods = [m for m in METHODS if any(m in r.errors for r in results.values())]
    for method in methods:
        errors = {name: r.errors[method] for name, r in results.items() if method in r.errors}
        groups = [
            (f"all {split}", [n for n, r in results.items() if r.split == split])
            for split in SPLITS
        ]
        groups = [(label, names) for label, names in groups if len(names) > 1]
        for row in error_table(errors, groups):
            name = row["sequence"]
            split = results[name].split if name in results else name.split(" ", 1)[1]
            rows.append({"method": method, "split": split, **row})
    return rows


def format_evaluation(evaluation: Evaluation) -> str:
    """The table as text: per sequence (and group) one line per method, in mm."""
    header = (
        f"{'sequence':<16} {'method':<13} {'frames':>6} {'mean':>6} {'median':>6} {'std':>6} "
        f"{'max':>6} {'min':>6} {'vertex max':>10}"
    )
    lines = [header]
    order = list(dict.fromkeys(row["sequence"] for row in evaluation.table))
    for sequence in order:
        first = True
        for row in (r for r in evaluation.table if r["sequence"] == sequence):
            label = sequence if first else ""
            first = False
            lines.append(
                f"{label:<16} {LABELS[row['method']]:<13} {row['frames']:>6} {row['mean']:6.3f} "
                f"{row['median']:6.3f} {row['std']:6.3f} {row['max_frame_mean']:6.3f} "
                f"{row['min_frame_mean']:6.3f} {row['max_vertex']:10.2f}"
            )
    return "\n".join(lines)


def network_ratio(evaluation: Evaluation, group: str) -> float | None:
    """Network mean / embedded mean over ``group`` (a sequence or "all test")."""
    means = {r["method"]: r["mean"] for r in evaluation.table if r["sequence"] == group}
    if "network" in means and means.get("embedded"):
        return means["network"] / means["embedded"]
    return None


def format_stretch(evaluation: Evaluation) -> str:
    """Per sequence: stretched skin edges at the mouth-open frames (largest, mean)."""
    lines = []
    for name, result in evaluation.sequences.items():
        if not result.stretch:
            continue
        parts = []
        for label, counts in result.stretch.items():
            text = ", ".join(
                f">{f}: max {max(c)} mean {np.mean(c):.1f}" for f, c in counts.items() if c
            )
            parts.append(f"{label} ({text})")
        lines.append(
            f"{name}: {len(result.mouth_open)} mouth-open frames ({result.mouth_open_rule}); "
            + "; ".join(parts)
        )
    return "\n".join(lines)


def report(evaluation: Evaluation) -> dict:
    """The evaluation as JSON-ready data (the table, per-frame errors, stretch counts)."""
    return {
        "error_rows": evaluation.error_rows,
        "table": evaluation.table,
        "network_over_embedded": {
            group: network_ratio(evaluation, group)
            for group in dict.fromkeys(r["sequence"] for r in evaluation.table)
        },
        "sequences": {
            name: {
                "split": r.split,
                "frames": r.frames.tolist(),
                "dropped_not_converged": r.dropped,
                "per_frame_mean_mm": {m: e["mean"].round(4).tolist() for m, e in r.errors.items()},
                "per_frame_max_mm": {m: e["max"].round(4).tolist() for m, e in r.errors.items()},
                "mouth_open_frames": r.mouth_open,
                "mouth_open_rule": r.mouth_open_rule,
                "stretched_edges_at_mouth_open": r.stretch,
            }
            for name, r in evaluation.sequences.items()
        },
        "renders": [
            {"sequence": f.sequence, "frame": f.frame, "why": f.why} for f in evaluation.renders
        ],
    }


def write_plots(evaluation: Evaluation, out: Path) -> list[Path]:
    """``error_<sequence>.png``: per-frame mean error of every method (mm)."""
    from ..sim.images import line_plot, write_png

    paths = []
    for name, result in evaluation.sequences.items():
        series = [
            (LABELS[m], result.frames, result.errors[m]["mean"])
            for m in METHODS
            if m in result.errors
        ]
        image = line_plot(series, f"{name}: per-frame mean error", "frame", "MM")
        paths.append(write_png(image, Path(out) / f"error_{name}.png"))
    return paths


__all__ = [
    "HEAT_CAP_MM",
    "LABELS",
    "METHODS",
    "Evaluation",
    "RenderFrame",
    "SequenceEvaluation",
    "close_up_regions",
    "ict_close_ups",
    "error_rows",
    "evaluate",
    "format_evaluation",
    "format_stretch",
    "heat_colours",
    "jaw_openings",
    "mouth_open_frames",
    "network_ratio",
    "pick_render_frames",
    "predictors",
    "report",
    "sequence_errors",
    "write_plots",
]
