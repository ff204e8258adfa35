"""Paired data in the neutral format (``nets.pairs``) from folders of per-frame OBJ files
(numpy, scipy and meshio; no torch): ``python -m physface prepare``.

Inputs (positions in cm; nothing is rescaled):

- ``lr_dir``: the LR frames, OBJ files holding each frame's LR node positions (``v``
  lines; anything else is ignored), one vertex per LR node in the rest mesh's order.
- ``hr_dir``: the HR surface frames, OBJ files of the same surface at every frame (``v``
  lines, one per vertex in one order).
- A folder holding ``*.obj`` files directly is one sequence, named ``sequence``;
  a folder holding sub-folders of ``*.obj`` files has one sequence per sub-folder, and
  ``hr_dir`` must then have the same sub-folders. The i-th LR frame pairs with the i-th
  HR frame; frames are sorted by file name with numbers compared as numbers
  (``f2.obj`` < ``f10.obj``).
- The rest poses: a file named ``rest.obj`` directly in ``lr_dir`` / ``hr_dir`` is the rest
  pose (and not a frame); without one, the first frame (of the first sequence) is. The HR
  rest file's faces (``f`` lines, polygons fanned into triangles) are the skin triangles.
- The LR tetrahedra: ``lr_mesh`` (any tet mesh meshio reads: .msh, .vtk, .vtu, .mesh, …;
  its points are the LR rest positions and override the rest OBJ) or, without it, the LR
  rest OBJ's faces, each tet given as its four triangles in a row (faces 4i..4i+3 span
  the four nodes of tet i). Negatively oriented tets get two nodes swapped (positive
  orientation, ``sim.tetmesh``'s convention); others are kept as given.

Computed (``prepare_pairs``): ``skin_elements`` / ``skin_weights``, the barycentric
location of every HR rest vertex in the LR rest tets (``sim.tetmesh.embed_points``: the
containing tet, or the nearby tet the vertex is least outside of, weights then
extrapolating); ``lr_knn``, each LR node's 5 nearest other nodes along the rest LR mesh's
edges (``sim.neighbours.lr_geodesic_knn``); ``skin_lr_neighbours`` / ``_distances``, each
HR vertex's 20 nearest LR nodes along the HR surface (``skin_surface_neighbours``).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..sim.errors import DataError
from .pairs import LR_KNN, NEIGHBOURS, PairRest, PairSequence, PairSet, read_splits

REST_NAME = "rest.obj"
SINGLE = "sequence"  # the name of the one sequence of a folder holding OBJs directly

# --- OBJ files ---------------------------------------------------------------------------------


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_obj(path: str | Path, faces: bool = False):
    """Vertex positions (V, 3) float32 of an OBJ file, and with ``faces`` its faces as a
    list of index lists (0-based; ``v/vt/vn`` and negative indices resolved)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"Cannot read {path} ({error.strerror}); check the file.") from None
    vertex_lines = []
    face_lines = []
    for line in text.splitlines():
        if line.startswith("v "):
            vertex_lines.append(line[2:])
        elif faces and line.startswith("f "):
            face_lines.append(line[2:])
    try:
        tokens = [line.split() for line in vertex_lines]
        counts = {len(t) for t in tokens}
        if len(counts) == 1 and min(counts) >= 3:
            c = counts.pop()
            values = np.array(" ".join(vertex_lines).split(), dtype=np.float64).reshape(-1, c)
            positions = values[:, :3]
        else:
            positions = np.array([t[:3] for t in tokens], dtype=np.float64).reshape(-1, 3)
    except ValueError:
        raise DataError(f"{path} has a vertex line that is not three numbers.") from None
    if not len(positions):
        raise DataError(f"{path} has no vertices (v lines); is it an OBJ file?")
    if not np.isfinite(positions).all():
        raise DataError(f"{path} has a vertex that is not a finite number.")
    if not faces:
        return positions.astype(np.float32)
    count = len(positions)
    polygons = []
    for line in face_lines:
        try:
            indices = [int(item.split("/")[0]) for item in line.split()]
        except ValueError:
            raise DataError(
                f"{path} has a face line that is not vertex indices: f {line}"
            ) from None
        indices = [i - 1 if i > 0 else count + i for i in indices]
        if len(indices) < 3 or min(indices) < 0 or max(indices) >= count:
            raise DataError(f"{path} has a face with indices outside its {count} vertices.")
        polygons.append(indices)
    return positions.astype(np.float32), polygons


def triangulate(polygons: list[list[int]]) -> np.ndarray:
    """Polygons fanned into triangles (T, 3) int64."""
    triangles = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


def tets_from_triangles(polygons: list[list[int]], where: str) -> np.ndarray:
    """Tetrahedra (E, 4) int64 from faces listing each tet's four triangles in a row; the
    nodes of a tet are its first triangle's then the fourth node. DataError when the faces
    are not triangles in groups of four spanning four nodes."""
    if not polygons:
        raise DataError(
            f"{where} has no faces, so no tetrahedra; give the LR tet mesh with --lr-mesh "
            "(a file meshio reads) or an OBJ whose faces are each tet's four triangles."
        )
    if any(len(p) != 3 for p in polygons) or len(polygons) % 4:
        raise DataError(
            f"{where} is not a tet mesh: its {len(polygons)} faces must be triangles, four "
            "per tetrahedron in a row."
        )
    groups = np.array(polygons, dtype=np.int64).reshape(-1, 4, 3)
    tets = np.empty((len(groups), 4), dtype=np.int64)
    tets[:, :3] = groups[:, 0]
    for e, group in enumerate(groups):
        nodes = np.unique(group)
        if len(nodes) != 4 or any(len(np.unique(tri)) != 3 for tri in group):
            raise DataError(
                f"{where} is not a tet mesh: faces {4 * e + 1}-{4 * e + 4} span {len(nodes)} "
                "nodes, not the four of one tetrahedron."
            )
        tets[e, 3] = nodes[~np.isin(nodes, group[0])][0]
    return tets


def read_tet_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(positions (N, 3) float32, tets (E, 4) int64, positively oriented) of a tet mesh
    file: an OBJ (faces as four triangles per tet) or any format meshio reads (its tetra
    cells)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"The LR mesh file {path} does not exist.")
    if path.suffix.lower() == ".obj":
        positions, polygons = read_obj(path, faces=True)
        return positions, _positive(positions, tets_from_triangles(polygons, str(path)))
    import meshio

    try:
        mesh = meshio.read(path)
    except Exception as error:  # noqa: BLE001 - meshio raises many types
        raise DataError(f"meshio cannot read the LR mesh {path}: {error}") from None
    tets = [block.data for block in mesh.cells if block.type == "tetra"]
    if not tets:
        kinds = ", ".join(sorted({block.type for block in mesh.cells})) or "none"
        raise DataError(
            f"{path} is not a tet mesh (its cells: {kinds}); the LR mesh must be tetrahedra."
        )
    positions = np.asarray(mesh.points[:, :3], np.float32)
    return positions, _positive(positions, np.concatenate(tets).astype(np.int64))


def _positive(positions: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Tets with two nodes swapped where negatively oriented (the simulator's convention);
    positively oriented ones are kept as given. Out-of-range indices are left for the caller."""
    from ..sim.tetmesh import signed_volumes

    if not len(tets) or tets.min() < 0 or tets.max() >= len(positions):
        return tets
    tets = tets.copy()
    flip = signed_volumes(positions, tets) < 0
    tets[flip, 2], tets[flip, 3] = tets[flip, 3], tets[flip, 2].copy()
    return tets


def _frames(folder: Path) -> dict[str, list[Path]]:
    """Sequence name → its frame files, for a folder of OBJs or of sub-folders of OBJs."""
    if not folder.is_dir():
        raise DataError(f"The frame folder {folder} does not exist.")
    files = sorted((p for p in folder.glob("*.obj") if p.name != REST_NAME), key=_natural_key)
    if files:
        return {SINGLE: files}
    out = {}
    for sub in sorted((p for p in folder.iterdir() if p.is_dir()), key=_natural_key):
        found = sorted(sub.glob("*.obj"), key=_natural_key)
        if found:
            out[_sequence_name(sub.name)] = found
    if not out:
        raise DataError(f"{folder} holds no .obj frames (nor sub-folders of them).")
    return out


def _sequence_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "sequence"


# --- neighbour tables --------------------------------------------------------------------------


def skin_surface_neighbours(
    positions: np.ndarray, triangles: np.ndarray, lr_positions: np.ndarray, k: int = NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
    """Each surface vertex's k nearest LR nodes along the surface: ``sim.neighbours
    .surface_lr_neighbours`` (linear assignment of LR nodes to surface vertices, Dijkstra
    along the surface edges, plus each LR node's depth) on the surface's largest connected
    part, as ``sim.neighbours.hr_skin_lr_neighbours`` does for the face's HR mesh; vertices
    off that part (eyes, teeth, loose vertices) take the row of their nearest vertex on it,
    distances plus the gap. Returns (indices (M, k) int64, distances (M, k) float32 cm)."""
    from scipy.spatial import cKDTree

    from ..sim.neighbours import _largest_component, surface_lr_neighbours

    if not len(triangles):
        raise DataError("The HR surface has no triangles; its rest OBJ needs faces.")
    faces = _largest_component(np.asarray(triangles))
    nodes, local = np.unique(faces, return_inverse=True)
    surface = positions[nodes]
    if len(surface) < len(lr_positions):
        raise DataError(
            f"The HR surface's largest connected part has {len(surface)} vertices, fewer than "
            f"the {len(lr_positions)} LR nodes; the neighbour tables need a denser surface."
        )
    indices, distances = surface_lr_neighbours(surface, local.reshape(-1, 3), lr_positions, k)
    host = np.full(len(positions), -1, dtype=np.int64)
    host[nodes] = np.arange(len(nodes))
    gap = np.zeros(len(positions))
    off = np.flatnonzero(host < 0)
    if len(off):
        gap[off], host[off] = cKDTree(surface).query(positions[off])
    return (
        indices[host].astype(np.int64),
        (distances[host] + gap[:, None]).astype(np.float32),
    )


# --- preparing ---------------------------------------------------------------------------------


def _read_frames(files: list[Path], count: int, what: str) -> np.ndarray:
    out = np.empty((len(files), count, 3), dtype=np.float32)
    for i, file in enumerate(files):
        positions = read_obj(file)
        if len(positions) != count:
            raise DataError(
                f"The {what} frame {file} has {len(positions)} vertices; the rest has {count}."
            )
        out[i] = positions
    return out


def prepare_pairs(
    lr_dir: str | Path,
    hr_dir: str | Path,
    lr_mesh: str | Path | None = None,
    splits: str | Path | None = None,
    progress=None,
) -> PairSet:
    """A PairSet from folders of per-frame OBJs (module docstring). ``splits``: a splits
    file (``nets.pairs``: ``{"train": [names], "val": ..., "test": ...,
    "generalisation": ...}``; unlisted sequences are train). ``progress(str)`` hears the
    stages. DataError, one line naming the file and the fix, for anything inconsistent."""
    report = progress or (lambda stage: None)
    lr_dir, hr_dir = Path(lr_dir), Path(hr_dir)
    lr_seqs, hr_seqs = _frames(lr_dir), _frames(hr_dir)
    if set(lr_seqs) != set(hr_seqs):
        raise DataError(
            f"The LR sequences ({', '.join(lr_seqs)}) and the HR sequences "
            f"({', '.join(hr_seqs)}) differ; give both folders the same sub-folders."
        )
    for name in lr_seqs:
        if len(lr_seqs[name]) != len(hr_seqs[name]):
            raise DataError(
                f"Sequence {name}: {len(lr_seqs[name])} LR frames but {len(hr_seqs[name])} HR "
                "frames; every LR frame needs its HR frame."
            )

    report("rest meshes")
    first = next(iter(lr_seqs))
    lr_rest_file = lr_dir / REST_NAME if (lr_dir / REST_NAME).is_file() else lr_seqs[first][0]
    hr_rest_file = hr_dir / REST_NAME if (hr_dir / REST_NAME).is_file() else hr_seqs[first][0]
    if lr_mesh is not None:
        lr_rest, lr_tets = read_tet_mesh(lr_mesh)
        mesh_name = str(lr_mesh)
    else:
        lr_rest, lr_tets = read_tet_mesh(lr_rest_file)
        mesh_name = str(lr_rest_file)
    n = len(lr_rest)
    if not len(lr_tets) or lr_tets.min() < 0 or lr_tets.max() >= n:
        raise DataError(f"The tets of {mesh_name} index outside its {n} nodes.")
    if lr_mesh is not None and lr_rest_file.name == REST_NAME:
        check = read_obj(lr_rest_file)
        if len(check) != n:
            raise DataError(
                f"{lr_rest_file} has {len(check)} vertices but the LR mesh {lr_mesh} has {n} nodes."
            )
    volumes = _volumes(lr_rest, lr_tets)
    if (np.abs(volumes) <= 1e-12 * max(1.0, float(np.abs(volumes).max()))).any():
        raise DataError(f"{mesh_name} has flat (zero-volume) tetrahedra; fix the LR mesh.")
    hr_rest, polygons = read_obj(hr_rest_file, faces=True)
    triangles = triangulate(polygons)
    if not len(triangles):
        raise DataError(
            f"The HR rest file {hr_rest_file} has no faces; it must give the triangles."
        )

    report("embedding")
    from ..sim.neighbours import lr_geodesic_knn
    from ..sim.tetmesh import embed_points

    elements, weights = embed_points(hr_rest, lr_rest, lr_tets)
    report("LR geodesic kNN")
    knn, _ = lr_geodesic_knn(SimpleNamespace(rest_positions=lr_rest, tets=lr_tets), k=LR_KNN)
    report("skin neighbour tables")
    try:
        neighbours, distances = skin_surface_neighbours(hr_rest, triangles, lr_rest, NEIGHBOURS)
    except ValueError as error:
        raise DataError(f"The neighbour tables of {hr_rest_file}: {error}") from None
    rest = PairRest(
        lr_rest=lr_rest,
        lr_tets=lr_tets,
        skin_rest=hr_rest,
        skin_triangles=triangles,
        skin_lr_neighbours=neighbours,
        skin_lr_distances=distances,
        lr_knn=knn,
        skin_elements=elements,
        skin_weights=weights,
    )
    assignment = read_splits(splits, lr_seqs) if splits is not None else {}
    sequences = {}
    for name in lr_seqs:
        report(f"frames of {name}")
        lr = _read_frames(lr_seqs[name], n, "LR")
        skin = _read_frames(hr_seqs[name], len(hr_rest), "HR")
        sequences[name] = PairSequence(name, assignment.get(name, "train"), lr, skin)
    source = f"prepared from LR {lr_dir} ({mesh_name}) and HR {hr_dir} ({hr_rest_file.name})"
    return PairSet(rest, sequences, source)


def _volumes(positions: np.ndarray, tets: np.ndarray) -> np.ndarray:
    from ..sim.tetmesh import signed_volumes

    return signed_volumes(positions, tets)


__all__ = [
    "prepare_pairs",
    "read_obj",
    "read_tet_mesh",
    "skin_surface_neighbours",
    "tets_from_triangles",
    "triangulate",
]
