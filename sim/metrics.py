"""Skin error metrics shared by the dataset report and the network's evaluation (numpy only).

The error of a skin against a reference is the per-vertex distance, reported in mm (inputs
in cm), over the visible skin that both simulate (the embedded vertices of the ICT face and
head/neck regions; Park et al. 2024 Table 1 report its per-frame mean). Statistics are
over the per-frame means of a sequence, as in the paper: mean, median, std, max and min,
plus the largest single-vertex error.

``stretched_edges`` counts skin edges longer than a factor of their rest length: embedded
skin that tears ("fangs" at the lips when the jaw opens) shows up there before it shows in
a mean error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .face_model import REGIONS

VISIBLE_SKIN_END = REGIONS["head_neck"][1]  # ICT face + head/neck: vertices [0, 11248)
PAPER_TEST_SPLIT = ("anger", "fear")  # Park et al. 2024 test sequences
# Park et al. 2024 Table 1, embedded surface on the test split: frames, mean, median, std,
# max and min of the per-frame mean error (mm).
PAPER_EMBEDDED = {"frames": 445, "mean": 0.80, "median": 0.77, "std": 0.13, "max": 1.40,
                  "min": 0.55}  # fmt: skip
CM_TO_MM = 10.0


def visible_vertices(embedded: np.ndarray) -> np.ndarray:
    """The embedded vertices on the visible skin (face and head/neck), in their order."""
    embedded = np.asarray(embedded)
    return embedded[embedded < VISIBLE_SKIN_END]


def vertex_errors_mm(predicted: np.ndarray, reference: np.ndarray, vertices) -> np.ndarray:
    """Distances (F, P) float32 mm between two skins (F, V, 3) cm at ``vertices`` (P,).

    Frames beyond the shorter of the two are ignored (a sequence still being generated)."""
    count = min(len(predicted), len(reference))
    difference = predicted[:count, vertices] - reference[:count, vertices]
    return (CM_TO_MM * np.linalg.norm(difference, axis=2)).astype(np.float32)


def frame_errors(predicted: np.ndarray, reference: np.ndarray, embedded) -> dict:
    """Per-frame errors (mm) of a skin sequence against a reference, both (F, V, 3) cm:
    ``mean`` and ``max`` over the visible embedded skin, ``mean_all`` over every embedded
    vertex (also mouth and eye sockets), and ``frames`` (F,) the frame numbers."""
    visible = vertex_errors_mm(predicted, reference, visible_vertices(embedded))
    every = vertex_errors_mm(predicted, reference, np.asarray(embedded))
    return {
        "mean": visible.mean(axis=1),
        "max": visible.max(axis=1),
        "mean_all": every.mean(axis=1),
        "frames": np.arange(len(visible)),
    }


def summarise(label: str, errors: Mapping[str, np.ndarray]) -> dict:
    """One table row: statistics of the per-frame mean error (mm) of ``frame_errors``."""
    mean, peak, mean_all = (np.asarray(errors[k], np.float64) for k in ("mean", "max", "mean_all"))
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


def error_table(
    errors: Mapping[str, Mapping[str, np.ndarray]],
    groups: Iterable[tuple[str, Iterable[str]]] = (("anger+fear", PAPER_TEST_SPLIT),),
) -> list[dict]:
    """Rows like the paper's Table 1: one per sequence of ``errors`` (name → frame_errors),
    then one per group (label, sequence names) over the frames of its sequences present."""
    rows = [summarise(name, e) for name, e in errors.items()]
    for label, names in groups:
        chosen = [errors[n] for n in names if n in errors]
        if chosen:
            joined = {
                k: np.concatenate([e[k] for e in chosen]) for k in ("mean", "max", "mean_all")
            }
            rows.append(summarise(label, joined))
    return rows


def format_table(rows: list[dict], paper: bool = True) -> str:
    """The rows as a fixed-width text table (mm), with the paper's embedded row last."""
    lines = [
        f"{'sequence':<14} {'frames':>6} {'mean':>6} {'median':>6} {'std':>6} {'max':>6} "
        f"{'min':>6} {'vertex max':>10} {'mean, all embedded':>18}"
    ]
    for r in rows:
        lines.append(
            f"{r['sequence']:<14} {r['frames']:>6} {r['mean']:6.2f} {r['median']:6.2f} "
            f"{r['std']:6.2f} {r['max_frame_mean']:6.2f} {r['min_frame_mean']:6.2f} "
            f"{r['max_vertex']:10.2f} {r['mean_all_embedded']:18.2f}"
        )
    if paper:
        p = PAPER_EMBEDDED
        lines.append(
            f"{'paper (test)':<14} {p['frames']:>6} {p['mean']:6.2f} {p['median']:6.2f} "
            f"{p['std']:6.2f} {p['max']:6.2f} {p['min']:6.2f}"
        )
    return "\n".join(lines)


def stretched_edges(
    positions: np.ndarray, rest: np.ndarray, edges: np.ndarray, factor: float
) -> np.ndarray:
    """Per frame, how many ``edges`` (K, 2) are longer than ``factor`` times their length in
    ``rest`` (V, 3); ``positions`` (F, V, 3) or one frame (V, 3). Returns (F,) int64 (or a
    0-d count for one frame). Zero-length rest edges are never counted."""
    if factor <= 0:
        raise ValueError(f"The stretch factor must be positive, not {factor}.")
    edges = np.asarray(edges)
    rest_length = np.linalg.norm(rest[edges[:, 1]] - rest[edges[:, 0]], axis=1)
    frames = np.asarray(positions)
    lengths = np.linalg.norm(frames[..., edges[:, 1], :] - frames[..., edges[:, 0], :], axis=-1)
    stretched = (lengths > factor * rest_length) & (rest_length > 0)
    return stretched.sum(axis=-1)


__all__ = [
    "PAPER_EMBEDDED",
    "PAPER_TEST_SPLIT",
    "VISIBLE_SKIN_END",
    "error_table",
    "format_table",
    "frame_errors",
    "stretched_edges",
    "summarise",
    "vertex_errors_mm",
    "visible_vertices",
]
