"""Tetrahedral meshes: element volumes, quality (dihedral angles), edges, boundary faces,
and barycentric embedding of points (the render skin) in the elements.

Positions are (N, 3) float32 cm; ``tets`` are (E, 4) int32 with positive orientation
(``det[x1-x0, x2-x0, x3-x0] > 0``).
"""

from __future__ import annotations

import numpy as np

TET_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])  # outward for positive tets


def signed_volumes(positions: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Signed element volumes (E,) float64 in cm³."""
    p = positions.astype(np.float64)
    d = p[tets[:, 1:]] - p[tets[:, :1]]
    return np.linalg.det(d) / 6.0


def orient_positive(positions: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Swap two vertices of every negatively oriented element (E, 4) int32."""
    tets = tets.copy()
    flip = signed_volumes(positions, tets) < 0
    tets[flip, 2], tets[flip, 3] = tets[flip, 3], tets[flip, 2].copy()
    return tets.astype(np.int32)


def dihedral_angles(positions: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """The six interior dihedral angles of every element (E, 6) in degrees."""
    p = positions.astype(np.float64)
    angles = []
    for a, b in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
        c, d = (i for i in range(4) if i not in (a, b))
        edge = p[tets[:, b]] - p[tets[:, a]]
        edge /= np.linalg.norm(edge, axis=1, keepdims=True)
        u = p[tets[:, c]] - p[tets[:, a]]
        v = p[tets[:, d]] - p[tets[:, a]]
        u -= np.einsum("ij,ij->i", u, edge)[:, None] * edge
        v -= np.einsum("ij,ij->i", v, edge)[:, None] * edge
        cos = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        angles.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.stack(angles, axis=1)


def unique_edges(tets: np.ndarray) -> np.ndarray:
    """Undirected edges of the mesh (K, 2) int32, each once with the smaller index first."""
    pairs = tets[:, [0, 1, 0, 2, 0, 3, 1, 2, 1, 3, 2, 3]].reshape(-1, 2)
    return np.unique(np.sort(pairs, axis=1), axis=0).astype(np.int32)


def boundary_faces(tets: np.ndarray) -> np.ndarray:
    """Triangles used by one element only (B, 3) int32, wound outward."""
    return boundary_faces_with_owner(tets)[0]


def boundary_faces_with_owner(tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles used by one element only (B, 3) int32, wound outward, and that element
    (B,) int32."""
    faces = tets[:, TET_FACES].reshape(-1, 3)
    key = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    single = np.flatnonzero(counts[inverse.ravel()] == 1)
    return faces[single].astype(np.int32), (single // 4).astype(np.int32)


def barycentric(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (..., 4) of points (..., 3) in tetrahedra (..., 4, 3)."""
    p = points.astype(np.float64)
    c = corners.astype(np.float64)
    basis = np.swapaxes(c[..., 1:, :] - c[..., :1, :], -1, -2)
    local = np.linalg.solve(basis, (p - c[..., 0, :])[..., None])[..., 0]
    return np.concatenate([1.0 - local.sum(-1, keepdims=True), local], axis=-1)


def embed_points(
    points: np.ndarray, positions: np.ndarray, tets: np.ndarray, candidates: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric embedding of points (P, 3) in a tet mesh.

    Returns (element (P,) int32, weights (P, 4) float32). A point inside the mesh gets its
    containing element; a point outside gets the nearby element it is least outside of, and
    its weights extrapolate (some negative), so every point is covered.
    """
    from scipy.spatial import cKDTree

    centroids = positions[tets].mean(axis=1)
    k = min(candidates, len(tets))
    _, nearest = cKDTree(centroids).query(points, k=k)
    nearest = nearest.reshape(len(points), k)
    elements = np.empty(len(points), dtype=np.int32)
    weights = np.empty((len(points), 4), dtype=np.float64)
    for start in range(0, len(points), 20000):
        block = slice(start, start + 20000)
        cand = nearest[block]
        bary = barycentric(points[block, None, :], positions[tets[cand]])
        best = np.argmax(bary.min(axis=-1), axis=1)
        rows = np.arange(len(cand))
        elements[block] = cand[rows, best]
        weights[block] = bary[rows, best]
    return elements, weights.astype(np.float32)


def interpolate(positions: np.ndarray, tets: np.ndarray, elements, weights) -> np.ndarray:
    """Embedded point positions (P, 3) float32 from mesh positions (N, 3)."""
    corners = positions[tets[elements]]
    return np.einsum("pk,pkd->pd", weights, corners).astype(np.float32)
