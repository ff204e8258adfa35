"""The soft-tissue volume: a closed, outward-oriented surface around the face's flesh.

Skin (face, head and neck), mouth socket and eye sockets of the ICT model share their
boundary vertices, so together they bound the flesh except for the open neck, which is
capped with a fan around the neck loop's centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .face_model import FaceModel

TISSUE_REGIONS = ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right")
OUTER_SKIN_REGIONS = ("face", "head_neck")


@dataclass
class TissueSurface:
    """Closed triangle surface of the flesh. Positions (V, 3) float32 cm; triangles (F, 3)
    int32 wound counter-clockwise seen from outside; ``ict_vertices`` (V,) int32 maps each
    surface vertex to its ICT vertex (−1 for the neck-cap centre)."""

    positions: np.ndarray
    triangles: np.ndarray
    ict_vertices: np.ndarray

    def volume(self) -> float:
        """Enclosed volume in cm³ (positive for an outward surface)."""
        a, b, c = (self.positions[self.triangles[:, i]].astype(np.float64) for i in range(3))
        return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)

    def boundary_edges(self) -> np.ndarray:
        """Edges used by exactly one triangle (empty for a closed surface) (B, 2)."""
        return open_edges(self.triangles)

    def is_consistently_oriented(self) -> bool:
        """Every edge is traversed once in each direction by its two triangles."""
        directed = self.triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
        forward = np.unique(directed, axis=0)
        return len(forward) == len(directed) and not len(self.boundary_edges())

    def vertex_normals(self) -> np.ndarray:
        """Area-weighted unit vertex normals (V, 3) float32, pointing outward."""
        p = self.positions.astype(np.float64)
        t = self.triangles
        face_normals = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
        normals = np.zeros_like(p)
        for i in range(3):
            np.add.at(normals, t[:, i], face_normals)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        return normals.astype(np.float32)


def open_edges(triangles: np.ndarray) -> np.ndarray:
    """Edges (B, 2) used by exactly one of the triangles (F, 3), smaller index first."""
    edges = np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return unique[counts == 1]


def boundary_loop(edges: np.ndarray) -> np.ndarray:
    """Order a single closed loop of undirected edges into a vertex cycle."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    if any(len(n) != 2 for n in neighbours.values()):
        raise DataError("The face model's open boundary is not a simple loop; is it the ICT mesh?")
    start = int(edges[0, 0])
    loop, previous = [start], None
    while True:
        a, b = neighbours[loop[-1]]
        nxt = b if a == previous else a
        if nxt == start:
            break
        previous = loop[-1]
        loop.append(nxt)
    if len(loop) != len(neighbours):
        raise DataError("The face model has more than one open boundary besides the neck.")
    return np.array(loop, dtype=np.int32)


def build_tissue_surface(model: FaceModel, positions: np.ndarray | None = None) -> TissueSurface:
    """The closed flesh surface of the model (optionally of other ICT positions (26719, 3))."""
    positions = model.neutral if positions is None else positions
    ict = np.concatenate([model.region(r) for r in TISSUE_REGIONS])
    local = np.full(model.vertex_count, -1, dtype=np.int32)
    local[ict] = np.arange(len(ict), dtype=np.int32)
    triangles = local[model.triangles(ict)]
    loop = boundary_loop(open_edges(triangles))
    centre_index = len(ict)
    cap_centre = positions[ict[loop]].mean(axis=0)
    cap = np.stack([loop, np.roll(loop, -1), np.full_like(loop, centre_index)], axis=1)
    # Orient the cap against the loop's existing triangles: a shared edge must run opposite.
    directed = {tuple(e) for e in triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).tolist()}
    if (int(cap[0, 0]), int(cap[0, 1])) in directed:
        cap = cap[:, [1, 0, 2]]
    surface = TissueSurface(
        positions=np.vstack([positions[ict], cap_centre[None]]).astype(np.float32),
        triangles=np.vstack([triangles, cap]).astype(np.int32),
        ict_vertices=np.append(ict, -1).astype(np.int32),
    )
    if not surface.is_consistently_oriented():
        raise DataError("The tissue surface is not closed and consistently oriented.")
    if surface.volume() < 0:
        surface.triangles = surface.triangles[:, [0, 2, 1]].copy()
    return surface
