"""The LR simulation mesh: a body-centred cubic (BCC) lattice clipped to the face.

BCC tetrahedra join two neighbouring cube centres with an edge of their shared face
(12 per cube; dihedral angles 60° and 90°), the well-conditioned regular elements the
real-time solver needs (Park et al. 2024 §4.1 use a regular non-conforming lattice). The
lattice keeps the elements that touch the flesh in the expressive part of the face (the
back of the head and the neck are dropped, as §4.1), drops elements that lie wholly in
bone, prescribes bone nodes to the skull or jaw, and separates the lips by duplicating
the nodes that upper-lip and lower-lip elements would share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import SOFT_BAND_CM, Anatomy
from .face_model import FaceModel
from .inside import inside_regular_grid
from .simmesh import FREE, LIP_LOWER, LIP_NONE, LIP_UPPER, SKULL, SimMesh
from .tetmesh import embed_points, orient_positive
from .tissue import TissueSurface, boundary_loop, open_edges

_FACE_CORNERS = ((0, 0), (1, 0), (1, 1), (0, 1))


@dataclass(frozen=True)
class ClipRegion:
    """The expressive part of the face kept for simulation (cm): in front of ``min_z``
    (about the ears) and above ``min_y`` (the neck, 6 cm below the chin). The cut's nodes
    are fixed to the skull, so the neck must reach well below the chin: with the cut at
    -11 cm the chin swept into it as the jaw opened (28°: four elements under the chin
    inverted, the solve stalled); at -15 none does (issue 19)."""

    min_z: float = 0.5
    min_y: float = -15.0

    def contains(self, points: np.ndarray) -> np.ndarray:
        return (points[:, 2] > self.min_z) & (points[:, 1] > self.min_y)


@dataclass(frozen=True)
class LipZone:
    """Where upper and lower lip are cut apart: between the mouth corners, in front of
    the teeth; the cut follows the inner lip line (Multi-PIE landmarks 60–67)."""

    line_x: np.ndarray  # (K,) ascending
    line_y: np.ndarray  # (K,)
    min_z: float
    y_range: tuple[float, float]

    @classmethod
    def from_model(cls, model: FaceModel) -> LipZone:
        p = model.neutral[model.landmarks]
        upper, lower = p[[60, 61, 62, 63, 64]], p[[60, 67, 66, 65, 64]]
        line = 0.5 * (upper + lower)
        order = np.argsort(line[:, 0])
        teeth_front = model.neutral[model.region("teeth"), 2].max()
        y = line[:, 1]
        return cls(line[order, 0], y[order], float(teeth_front - 1.2), (y.min() - 2, y.max() + 2))

    def side(self, points: np.ndarray) -> np.ndarray:
        """LIP_UPPER/LIP_LOWER for points (P, 3) in the zone, LIP_NONE elsewhere (P,) int8."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        in_zone = (
            (x > self.line_x[0]) & (x < self.line_x[-1]) & (z > self.min_z)
            & (y > self.y_range[0]) & (y < self.y_range[1])
        )  # fmt: skip
        above = y > np.interp(x, self.line_x, self.line_y)
        return np.where(in_zone, np.where(above, LIP_UPPER, LIP_LOWER), LIP_NONE).astype(np.int8)


def bcc_lattice(lower: np.ndarray, upper: np.ndarray, spacing: float):
    """All BCC nodes (N, 3) float64 and tets (E, 4) int64 covering a box (cm).

    Returns (nodes, tets, grid) where grid = (xs, ys, zs, shape) of the corner grid."""
    counts = np.ceil((upper - lower) / spacing).astype(int) + 1
    nx, ny, nz = counts
    offset = np.array([1.1e-4, 1.3e-4, 0.7e-4])  # keeps nodes off surface vertices/edges
    xs, ys, zs = (lower[a] + offset[a] + spacing * np.arange(counts[a] + 1) for a in range(3))
    corner_shape = (nx + 1, ny + 1, nz + 1)
    corners = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1).reshape(-1, 3)
    centres = (
        np.stack(np.meshgrid(xs[:-1], ys[:-1], zs[:-1], indexing="ij"), -1).reshape(-1, 3)
        + spacing / 2
    )
    n_corners = len(corners)

    def corner_id(i, j, k):
        return (i * corner_shape[1] + j) * corner_shape[2] + k

    def centre_id(i, j, k):
        return n_corners + (i * ny + j) * nz + k

    ci, cj, ck = (
        a.ravel() for a in np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    )
    tets = []
    for axis in range(3):
        step = np.eye(3, dtype=int)[axis]
        ok = (ci + step[0] < nx) & (cj + step[1] < ny) & (ck + step[2] < nz)
        i, j, k = ci[ok], cj[ok], ck[ok]
        a = centre_id(i, j, k)
        b = centre_id(i + step[0], j + step[1], k + step[2])
        others = [ax for ax in range(3) if ax != axis]
        face_corners = []
        for u, v in _FACE_CORNERS:
            idx = [i + step[0], j + step[1], k + step[2]]
            idx = [np.asarray(x).copy() for x in idx]
            idx[axis] = [i, j, k][axis] + 1
            idx[others[0]] = idx[others[0]] + u - (step[others[0]])
            idx[others[1]] = idx[others[1]] + v - (step[others[1]])
            face_corners.append(corner_id(*idx))
        for m in range(4):
            tets.append(np.stack([a, b, face_corners[m], face_corners[(m + 1) % 4]], axis=1))
    nodes = np.vstack([corners, centres])
    return nodes, np.vstack(tets), (xs, ys, zs, corner_shape)


def build_lattice(
    model: FaceModel,
    surface: TissueSurface,
    anatomy: Anatomy,
    spacing: float,
    clip: ClipRegion = ClipRegion(),  # noqa: B008
) -> SimMesh:
    """The LR lattice at ``spacing`` cm, clipped, bone-labelled and with separated lips."""
    lower = surface.positions.min(axis=0) - spacing
    upper = surface.positions.max(axis=0) + spacing
    lower[2] = max(lower[2], clip.min_z - spacing)
    lower[1] = max(lower[1], clip.min_y - spacing)
    nodes, tets, (xs, ys, zs, corner_shape) = bcc_lattice(lower, upper, spacing)
    inside_corners = inside_regular_grid(surface.positions, surface.triangles, xs, ys, zs)
    h = spacing / 2
    inside_centres = inside_regular_grid(
        surface.positions, surface.triangles, xs[:-1] + h, ys[:-1] + h, zs[:-1] + h
    )
    inside = np.concatenate([inside_corners.ravel(), inside_centres.ravel()])

    centroids = nodes[tets].mean(axis=1)
    keep = clip.contains(centroids) & inside[tets].any(axis=1)
    skin = surface.positions[:-1]  # the neck-cap centre is not skin
    skin_in_clip = skin[clip.contains(skin)]
    candidates = np.flatnonzero(clip.contains(centroids))
    containing, _ = embed_points(skin_in_clip, nodes, tets[candidates])
    keep[candidates[containing]] = True

    labels = np.zeros(len(nodes), dtype=np.int8)
    used = np.unique(tets[keep])
    labels[used] = anatomy.bone_labels(
        nodes[used].astype(np.float32),
        inside[used],
        attach_radius=0.4 * spacing,
        gap=max(0.55 * spacing, SOFT_BAND_CM),
    )
    cut = (nodes[:, 2] < clip.min_z + spacing) | (nodes[:, 1] < clip.min_y + spacing)
    cut &= ~anatomy.near_jaw(
        nodes, max(0.55 * spacing, SOFT_BAND_CM)
    )  # the jaw never hangs on the cut
    labels[used[inside[used] & cut[used] & (labels[used] == FREE)]] = SKULL
    skin_tets = np.zeros(len(tets), dtype=bool)
    skin_tets[candidates[containing]] = True
    keep &= (labels[tets] == FREE).any(axis=1) | skin_tets
    tets = tets[keep]

    used, tets = np.unique(tets, return_inverse=True)
    tets = tets.reshape(-1, 4)
    nodes, labels = nodes[used].astype(np.float32), labels[used]
    tets = orient_positive(nodes, tets)

    lip_side = LipZone.from_model(model).side(nodes[tets].mean(axis=1))
    nodes, tets, labels = separate_lips(nodes, tets, labels, lip_side)
    return SimMesh(nodes, tets, labels, lip_side)


def separate_lips(nodes, tets, labels, lip_side):
    """Duplicate nodes shared by upper- and lower-lip elements; lower elements use copies."""
    upper_nodes = np.unique(tets[lip_side == LIP_UPPER])
    lower_nodes = np.unique(tets[lip_side == LIP_LOWER])
    shared = np.intersect1d(upper_nodes, lower_nodes)
    if not len(shared):
        return nodes, tets, labels
    copy_of = np.full(len(nodes), -1, dtype=np.int64)
    copy_of[shared] = len(nodes) + np.arange(len(shared))
    lower = lip_side == LIP_LOWER
    lower_tets = tets[lower]
    remapped = np.where(copy_of[lower_tets] >= 0, copy_of[lower_tets], lower_tets)
    tets = tets.copy()
    tets[lower] = remapped
    return (
        np.vstack([nodes, nodes[shared]]),
        tets.astype(np.int32),
        np.concatenate([labels, labels[shared]]),
    )


def skin_lip_sides(model: FaceModel, vertices: np.ndarray) -> np.ndarray:
    """LIP_UPPER/LIP_LOWER/LIP_NONE (P,) int8 of ICT skin vertices (P,), by the skin's
    topology rather than by the lip line.

    The neutral lips are closed and overlap: near the corners the upper lip's red hangs
    below the landmark line and the lower lip's rises above it, so a geometric side splits
    mesh edges and the embedded skin tears there when the jaw opens. The face's mouth
    opening (the face region's boundary loop that the mouth socket closes) reaches past the
    zone's corners, so inside the ``LipZone`` the face falls apart into pieces that each
    touch one half of that loop (split at its outermost vertices): a vertex takes the side
    of its piece. Where a piece touches both halves (the socket's lining, joined along the
    lips' contact seam) it takes the half nearer along the piece's edges; a piece touching
    neither keeps the lip line's side. Vertices outside the zone are LIP_NONE.
    """
    from scipy.sparse.csgraph import connected_components, dijkstra

    from .neighbours import edge_graph, triangle_edges

    n = model.vertex_count
    geometric = LipZone.from_model(model).side(model.neutral)
    upper_half, lower_half = _mouth_loop_halves(model)
    half = np.zeros(n, dtype=np.int8)
    half[upper_half], half[lower_half] = LIP_UPPER, LIP_LOWER

    sides = np.full(n, LIP_NONE, dtype=np.int8)
    for region in ("face", "mouth_socket"):
        members = model.region(region)
        members = members[geometric[members] != LIP_NONE]
        graph = edge_graph(model.neutral, triangle_edges(model.triangles(members)))
        _, piece = connected_components(graph, directed=False)
        sides[members] = geometric[members]
        for label in np.unique(piece[members]):
            in_piece = members[piece[members] == label]
            touched = set(half[in_piece].tolist()) - {LIP_NONE}
            if len(touched) == 1:
                sides[in_piece] = touched.pop()
            elif len(touched) == 2:
                to_upper = dijkstra(graph, indices=np.intersect1d(in_piece, upper_half),
                                    min_only=True)  # fmt: skip
                to_lower = dijkstra(graph, indices=np.intersect1d(in_piece, lower_half),
                                    min_only=True)  # fmt: skip
                nearer = to_upper[in_piece] <= to_lower[in_piece]
                sides[in_piece] = np.where(nearer, LIP_UPPER, LIP_LOWER)
    return sides[vertices]


def _mouth_loop_halves(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The face region's mouth opening split at its leftmost and rightmost vertices:
    (upper half, lower half) ICT vertex indices, the corners in neither."""
    from scipy.sparse.csgraph import connected_components

    from .neighbours import edge_graph

    edges = open_edges(model.triangles(model.region("face")))
    _, part = connected_components(edge_graph(model.neutral, edges), directed=False)
    lip_centre = 0.5 * (model.neutral[model.landmarks[62]] + model.neutral[model.landmarks[66]])
    on_boundary = np.unique(edges)
    nearest = on_boundary[
        np.argmin(np.linalg.norm(model.neutral[on_boundary] - lip_centre, axis=1))
    ]
    mouth = boundary_loop(edges[part[edges[:, 0]] == part[nearest]])
    x = model.neutral[mouth, 0]
    loop = np.roll(mouth, -int(np.argmin(x)))  # from the left corner
    right = int(np.flatnonzero(loop == mouth[np.argmax(x)])[0])
    one, other = loop[1:right], loop[right + 1 :]
    if model.neutral[one, 1].mean() < model.neutral[other, 1].mean():
        one, other = other, one
    return one, other
