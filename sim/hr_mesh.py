"""The HR simulation mesh: a conforming tetrahedral mesh of the flesh (fTetWild).

fTetWild (pytetwild) meshes the closed tissue surface with a sizing field: the target edge
length ``l`` in the soft tissue of the clip region (and a thin band outside the skin), a
coarse length elsewhere (deep bone, the back of the head, the lower neck), which would
all be dropped anyway. The kept elements follow the lattice's rules: centroid in the clip
region, not wholly bone (nodes labelled by ``Anatomy.bone_labels``; nodes within one edge
length of the clip cut are skull), plus every element holding a tissue-surface vertex of
the clip region. ``l`` is chosen from the kept volume so that the element count is
``ratio`` × the LR count (±20 %), with one corrected retry.

The lips: fTetWild's envelope (about l/6 off the input surface) is wider than the mouth
slit (0.8–1.2 mm at the centre), so it bridges the slit in places. The mesh is cut along
the inner lip line as the lattice is (LipZone sides by element centroid, nodes shared by
upper and lower elements duplicated); ``lip_contact_surfaces`` gives the boundary
triangles facing each other across the cut.

fTetWild shuffles its triangle insertion order with a hardware random seed (not exposed by
pytetwild), so two runs differ; the raw fTetWild output is therefore cached on disk, keyed
by every input, and with the same cache entry the same inputs give the same mesh (a damaged
entry is run again, which gives a different one).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .anatomy import SOFT_BAND_CM, Anatomy
from .cache import cache_root, content_key, read_arrays, read_or_rebuild, write_arrays
from .errors import DataError
from .face_model import FaceModel
from .inside import inside_regular_grid
from .lattice import ClipRegion, LipZone, bcc_lattice, separate_lips
from .simmesh import FREE, LIP_LOWER, LIP_NONE, LIP_UPPER, SKULL, SimMesh
from .tetmesh import boundary_faces_with_owner, embed_points, orient_positive, signed_volumes
from .tissue import TissueSurface

TETWILD_VERSION = 1  # bump to invalidate cached fTetWild runs
COUNT_TOLERANCE = 0.2  # accepted relative deviation of the element count from the target
TET_VOLUME_FACTOR = 1.05  # a regular tet's volume over fTetWild's mean element volume
ENVELOPE_PER_EDGE = 1.0 / 6.0  # fTetWild envelope (cm) per target edge length (cm)
BACKGROUND_SPACING = 0.8  # cm, the sizing field's background lattice
COARSE_EDGE = 2.2  # cm, the edge length away from the kept region (at least 4 l)


def build_hr_mesh(
    model: FaceModel,
    surface: TissueSurface,
    anatomy: Anatomy,
    lr_element_count: int,
    ratio: float = 25.0,
    clip: ClipRegion = ClipRegion(),  # noqa: B008
    progress=None,
    cache: bool = True,
) -> SimMesh:
    """The HR conforming mesh with about ``ratio`` × ``lr_element_count`` elements.

    ``progress(stage: str)`` is called per stage. With ``cache`` the fTetWild output is
    read from / written to the cache folder (the mesher is not deterministic).
    """
    report = progress or (lambda stage: None)
    target = ratio * lr_element_count
    report("HR mesh: kept volume")
    edge = estimate_edge_length(surface, anatomy, clip, target)
    hr = None
    for attempt in range(2):
        report(f"HR mesh: fTetWild, edge {edge:.3f} cm")
        hr = _build_once(model, surface, anatomy, clip, edge, cache)
        if abs(hr.element_count / target - 1.0) <= COUNT_TOLERANCE or attempt:
            break
        edge *= (hr.element_count / target) ** (1.0 / 3.0)
    report(
        f"HR mesh: {hr.vertex_count} vertices, {hr.element_count} elements "
        f"({hr.element_count / lr_element_count:.1f}× LR), "
        f"min dihedral {hr.min_dihedral_deg():.1f}°"
    )
    return hr


def estimate_edge_length(
    surface: TissueSurface, anatomy: Anatomy, clip: ClipRegion, element_count: float
) -> float:
    """Target edge length (cm) for ``element_count`` kept elements, from the kept volume:
    the soft tissue in the clip region plus a layer of 0.4 l into the bone."""
    h = 0.2
    lower, upper = surface.positions.min(axis=0), surface.positions.max(axis=0)
    xs, ys, zs = (np.arange(lower[a] + h / 2 + 1.3e-4, upper[a], h) for a in range(3))
    inside = inside_regular_grid(surface.positions, surface.triangles, xs, ys, zs)
    points = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1)[inside]
    points = points[clip.contains(points)].astype(np.float32)
    distance, depth = anatomy.tissue_depth_at(points)
    edge = 0.5
    for _ in range(3):
        volume = np.count_nonzero(distance <= depth + 0.4 * edge) * h**3
        edge = (TET_VOLUME_FACTOR * 6.0 * np.sqrt(2.0) * volume / element_count) ** (1.0 / 3.0)
    return float(edge)


def _build_once(model, surface, anatomy, clip, edge, cache) -> SimMesh:
    nodes, tets = _tetwild_cached(surface, anatomy, clip, edge, cache)
    return _keep_and_label(model, surface, anatomy, clip, edge, nodes, tets)


def _keep_and_label(model, surface, anatomy, clip, edge, nodes, tets) -> SimMesh:
    """The lattice's rules on a conforming mesh: clip, drop wholly-bone elements, label
    bone and cut nodes, separate the lips."""
    nodes = nodes.astype(np.float32)
    tets = orient_positive(nodes, tets.astype(np.int64))
    volumes = signed_volumes(nodes, tets)
    tets = tets[volumes > 1e-9 * edge**3]  # degenerate elements
    centroids = nodes[tets].mean(axis=1)
    in_clip = clip.contains(centroids)

    band = max(0.75 * edge, SOFT_BAND_CM)
    labels = anatomy.bone_labels(nodes, np.ones(len(nodes), dtype=bool), gap=band)
    cut = (nodes[:, 2] < clip.min_z + edge) | (nodes[:, 1] < clip.min_y + edge)
    cut &= ~anatomy.near_jaw(nodes, band)  # the jaw never hangs on the cut
    labels[cut & (labels == FREE)] = SKULL
    skin = surface.positions[:-1]  # the neck-cap centre is not skin
    skin = skin[clip.contains(skin)]
    candidates = np.flatnonzero(in_clip)
    containing, _ = embed_points(skin, nodes, tets[candidates])
    keep = in_clip & (labels[tets] == FREE).any(axis=1)
    keep[candidates[containing]] = True
    tets = tets[keep]

    used, tets = np.unique(tets, return_inverse=True)
    tets = tets.reshape(-1, 4).astype(np.int32)
    nodes, labels = nodes[used], labels[used]
    lip_side = LipZone.from_model(model).side(nodes[tets].mean(axis=1))
    for _ in range(3):
        cut_nodes, cut_tets, cut_labels = separate_lips(nodes, tets, labels, lip_side)
        loose = _loose_elements(cut_tets, cut_labels)
        if (loose & (lip_side != LIP_NONE)).any():
            # Lip elements on the wrong side of the line, cut off from their own lip: move.
            flip = loose & (lip_side != LIP_NONE)
            lip_side = np.where(flip, LIP_UPPER + LIP_LOWER - lip_side, lip_side).astype(np.int8)
            continue
        # Parts no bone holds (none so far) would make the solver singular: drop them.
        cut_tets, lip_side = cut_tets[~loose], lip_side[~loose]
        used, cut_tets = np.unique(cut_tets, return_inverse=True)
        return SimMesh(
            cut_nodes[used].astype(np.float32),
            cut_tets.reshape(-1, 4).astype(np.int32),
            cut_labels[used],
            lip_side,
        )
    raise DataError("Cutting the HR mesh's lips apart leaves parts with no bone to hold them.")


def _loose_elements(tets: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Elements (E,) bool in connected parts of the mesh without a prescribed node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = tets[:, [0, 1, 0, 2, 0, 3]].reshape(-1, 2)
    n = len(labels)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, part = connected_components(graph, directed=False)
    held = np.zeros(part.max() + 1, dtype=bool)
    held[part[labels != FREE]] = True
    return ~held[part[tets[:, 0]]]


def lip_contact_surfaces(
    hr: SimMesh, lip_zone: LipZone, band: float = 0.4, min_facing: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Boundary triangles of the upper and lower lip that face the mouth slit.

    A boundary face of an upper-lip (lower-lip) element whose outward unit normal points
    down (up) by more than ``min_facing`` and whose centroid lies within ``band`` cm of the
    inner lip line. Returns (upper (U, 3), lower (L, 3)) int32 node triangles, outward.
    """
    faces, owner = boundary_faces_with_owner(hr.tets)
    p = hr.rest_positions.astype(np.float64)
    corners = p[faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-300
    centroid = corners.mean(axis=1)
    near = np.abs(centroid[:, 1] - np.interp(centroid[:, 0], lip_zone.line_x, lip_zone.line_y))
    near = near < band
    side = hr.lip_side[owner]
    upper = faces[near & (side == LIP_UPPER) & (normal[:, 1] < -min_facing)]
    lower = faces[near & (side == LIP_LOWER) & (normal[:, 1] > min_facing)]
    return upper.astype(np.int32), lower.astype(np.int32)


# --- fTetWild -------------------------------------------------------------------------------


def sizing_field(surface: TissueSurface, anatomy: Anatomy, clip: ClipRegion, edge: float):
    """Background mesh and target edge lengths for fTetWild: ``edge`` in the soft tissue of
    the clip region (grown by 2 l + one background cell into the bone and a cell outside
    the skin), ``max(COARSE_EDGE, 4 l)`` elsewhere.

    Returns (nodes (B, 3) float64, tets (T, 4) int32, values (B,) float64, coarse edge)."""
    spacing = BACKGROUND_SPACING
    lower = surface.positions.min(axis=0) - 2 * spacing
    upper = surface.positions.max(axis=0) + 2 * spacing
    nodes, tets, (xs, ys, zs, _) = bcc_lattice(lower, upper, spacing)
    h = spacing / 2
    inside = np.concatenate(
        [
            inside_regular_grid(surface.positions, surface.triangles, xs, ys, zs).ravel(),
            inside_regular_grid(
                surface.positions, surface.triangles, xs[:-1] + h, ys[:-1] + h, zs[:-1] + h
            ).ravel(),
        ]
    )
    distance, depth = anatomy.tissue_depth_at(nodes.astype(np.float32))
    margin = 2 * edge + spacing
    fine = np.where(inside, distance <= depth + margin, distance <= spacing)
    fine &= (nodes[:, 2] > clip.min_z - margin) & (nodes[:, 1] > clip.min_y - margin)
    coarse = max(COARSE_EDGE, 4.0 * edge)
    values = np.where(fine, edge, coarse)
    return nodes, tets.astype(np.int32), values, coarse


def _tetwild_cached(surface, anatomy, clip, edge, cache: bool, log=None):
    """fTetWild's mesh (nodes (N, 3) float64, tets (E, 4) int64) of the tissue surface.

    With ``cache`` it is read from the cache folder, or run and stored there; a damaged
    entry is run again, saying so through ``log(line)`` (default: stderr)."""
    bg_nodes, bg_tets, bg_values, coarse = sizing_field(surface, anatomy, clip, edge)
    positions = surface.positions.astype(np.float64)
    diagonal = float(np.linalg.norm(positions.max(axis=0) - positions.min(axis=0)))
    epsilon = ENVELOPE_PER_EDGE * edge / diagonal
    digest = hashlib.sha256()
    for array in (positions, surface.triangles, bg_nodes, bg_tets, bg_values):
        digest.update(np.ascontiguousarray(array).tobytes())
    key = content_key("hr_tetwild", TETWILD_VERSION, digest.hexdigest(), round(edge, 6),
                      round(coarse, 6), epsilon, _pytetwild_version())  # fmt: skip

    def run():
        return _run_tetwild(positions, surface.triangles, coarse, epsilon, bg_nodes, bg_tets,
                            bg_values)  # fmt: skip

    if not cache:
        return run()
    path = cache_root() / "hr_mesh" / f"tetwild_{key}.npz"
    return read_or_rebuild(path, _read_tetwild, run, _write_tetwild, "fTetWild mesh", log)


def _read_tetwild(path: Path) -> tuple[np.ndarray, np.ndarray]:
    stored = read_arrays(path, ("nodes", "tets"))
    nodes, tets = stored["nodes"], stored["tets"].astype(np.int64)
    if nodes.ndim != 2 or nodes.shape[1] != 3 or tets.ndim != 2 or tets.shape[1] != 4:
        raise ValueError(f"nodes {nodes.shape} and tets {tets.shape} are not a tet mesh")
    if not len(tets) or tets.min() < 0 or tets.max() >= len(nodes):
        raise ValueError("element indices out of range")
    return nodes, tets


def _write_tetwild(path: Path, mesh: tuple[np.ndarray, np.ndarray]) -> None:
    nodes, tets = mesh
    write_arrays(path, {"nodes": nodes, "tets": tets.astype(np.int32)})


@contextmanager
def _python_signal_handlers():
    """Put Python's SIGINT and SIGTERM handlers back after native code: fTetWild's
    geogram installs its own, after which Ctrl-C killed the process outright (exit −2,
    no KeyboardInterrupt, no "interrupted" line) instead of stopping it cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _run_tetwild(positions, triangles, coarse, epsilon, bg_nodes, bg_tets, bg_values):
    """One fTetWild run: (nodes (N, 3) float64, tets (E, 4) int64)."""
    wrapper = _load_tetwild()
    with _scratch_directory(), _python_signal_handlers():
        # fTetWild writes __tracked_surface.stl to the working folder
        nodes, tets = wrapper.tetrahedralize_mesh(
            np.ascontiguousarray(positions),
            np.ascontiguousarray(triangles, dtype=np.uint32),
            True,  # optimize
            False,  # skip_simplify
            0.05,  # relative edge length (unused: the absolute one is set)
            float(coarse),
            float(epsilon),
            10.0,  # stop energy
            False,  # coarsen
            os.cpu_count() or 1,
            80,  # optimisation passes at most
            6,  # log level
            True,  # quiet
            False,  # VTK ordering
            False,  # disable filtering
            np.ascontiguousarray(bg_nodes, dtype=np.float64),
            np.ascontiguousarray(bg_tets, dtype=np.int32),
            np.ascontiguousarray(bg_values, dtype=np.float64),
        )
    nodes, tets = np.asarray(nodes, dtype=np.float64), np.asarray(tets, dtype=np.int64)
    if not len(tets):
        raise DataError("fTetWild returned no elements for the tissue surface.")
    return nodes, tets


@contextmanager
def _scratch_directory():
    """Run inside a temporary working folder, removed afterwards."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="physface-tetwild-") as folder:
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)


def _pytetwild_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytetwild")
    except PackageNotFoundError:
        return "unknown"


def _load_tetwild():
    """pytetwild's compiled fTetWild wrapper. (pytetwild 0.4's package ``__init__`` imports
    pyvista, which PhysFace does not need, so the extension module is loaded on its own.)"""
    spec = importlib.util.find_spec("pytetwild")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The HR mesh needs pytetwild (pip install pytetwild==0.4.2); it is a build-time "
            "tool only, not needed for LR playback."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        library = folder / f"PyfTetWildWrapper{suffix}"
        if library.is_file():
            module_spec = importlib.util.spec_from_file_location(
                "pytetwild.PyfTetWildWrapper", library
            )
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    raise DataError(f"pytetwild at {folder} has no compiled fTetWild wrapper for this Python.")
