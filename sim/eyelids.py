"""Eyelids: lids that slide over the eyeballs, on top of every skin stage.

A lid is a sheet a few millimetres thick lying on the eye; neither the 1.15 cm lattice nor
the fine mesh resolves it well enough to close it (issue 19: the LR squint narrows the
fissure to 4 mm, the HR one pushes the lid into the orbit). So the lids are treated
specially, the same way after every skin stage (coarse, fine, the bake): the skin within
``RIM_CM`` of each eye opening is a triangle membrane (the ICT skin's own triangles)
solved by projective dynamics once the skin stage has placed it.

- Its outer rim and the two canthi (held by the palpebral ligaments) keep the skin
  stage's positions; inside, each triangle aims for the skin stage's own shape (its
  stretch, the rotation free), so with the lid muscles relaxed and no lid inside an eye
  the layer returns the skin stage's lids unchanged.
- The lid muscles (``kind = "lid"`` in ``data/muscles.toml``) move the tarsal plates, the
  stiff plates along the margins that the pretarsal orbicularis and the levator's
  aponeurosis insert on: each plate slides over the eye about its centre, at each
  azimuth by the elevation (and radius) that takes its margin a fraction of the way to
  the closing line: the palpebral orbicularis closes the lids (the margins meet at
  ``MEET_FRACTION`` of the fissure above the lower margin: the upper lid does most of a
  blink's travel), the levator raises the upper lid. The plates pull the rest of the lid
  skin through the membrane, which stretches over the eye or bunches toward the crease.
- The eyeballs are rigid with the skull and are colliders: every lid vertex stays outside
  its eyeball's surface (a radius table ray-cast from the ICT eyeball mesh, cornea
  included) by its rest clearance, at most ``LID_THICKNESS_CM``; the two margins of an
  eye do not cross (contact in the eye's angular coordinates).
- Eyelashes, lacrimal caruncles and the eye's blend and occlusion shells follow the lid
  by the correction of their nearest lid vertices.

Units: cm, in the skull's frame inside the solve. Projective dynamics: Bouaziz et al.
2014; lid anatomy (tarsal plates, palpebral orbicularis, levator aponeurosis): Gray's
Anatomy and ANATOMY.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .face_model import FaceModel

RIM_CM = 1.2  # geodesic reach of the lid membrane from the eye opening
ATTACHED_FROM_CM = 0.9  # beyond this the membrane is pulled softly back to the skin stage
# Tarsal plates by geodesic distance from the (posterior) margin: full weight, then fading
# out (ICT's skin wraps about 3.5 mm over the margin before the visible lid line).
TARSUS_CM = {1: (0.45, 0.9), 2: (0.3, 0.6)}  # upper, lower: (full to, gone at)
MEET_FRACTION = 0.15  # where closed lids meet, from the lower margin up the fissure
LID_THICKNESS_CM = 0.08  # most clearance kept between lid skin and eyeball
EYE_SIDES = ("left", "right")
FOLLOWER_REGIONS = ("eyelashes", "eye_blend", "eye_occlusion", "lacrimal")
UPPER, LOWER = 1, 2
_POLAR_STEPS, _AZIMUTH_STEPS, _POLAR_MAX = 64, 128, np.radians(120.0)


@dataclass
class LidRig:
    """The lid membranes of both eyes, in the rig (arrays, rest positions in cm).

    vertices (L,) int32 ICT skin vertices; eye (L,) int8 0 left / 1 right; side (L,) int8
    UPPER/LOWER lid; held (L,) bool (rim and canthi: the skin stage's positions);
    attachment (L,) float32 in [0, 1], how strongly a vertex is pulled back to the skin
    stage; clearance (L,) float32 cm kept from the eyeball; triangles (T, 3) int32 local;
    rest_inverse (T, 2, 2) float32 inverse rest edge matrix in each triangle's own 2D
    frame; areas (T,) float32 cm²; tarsus (L,) float32 in [0, 1], how firmly a vertex
    belongs to its lid's tarsal plate; lid_muscles (J,) int16 indices into the rig's
    muscle names with lid_muscle_eye (J,) int8 (0 left, 1 right), lid_muscle_lids (J,)
    int8 (1 upper, 2 lower, 3 both) and lid_muscle_raises (J,) bool (else closes);
    margin (Q,) int32 local vertices of the lid margins, medial to lateral per eye, lid
    and ring (margin_eye, margin_side, margin_ring (Q,) int8: ring 0 the posterior margin,
    the face's edge against the eye; ring 1 the anterior margin, one edge in front: the
    visible lid line), canthi left out; eye_centres
    (2, 3) float32; eye_radius (2, P, A) float32 cm, the eyeball's outer surface along
    polar angle (from +z, up to 120°) × azimuth; followers (F,) int32 ICT vertices that
    follow the lid, follower_neighbours (F, 4) int32 local, follower_weights (F, 4)."""

    vertices: np.ndarray
    eye: np.ndarray
    side: np.ndarray
    held: np.ndarray
    attachment: np.ndarray
    clearance: np.ndarray
    triangles: np.ndarray
    rest_inverse: np.ndarray
    areas: np.ndarray
    tarsus: np.ndarray
    lid_muscles: np.ndarray
    lid_muscle_eye: np.ndarray
    lid_muscle_lids: np.ndarray
    lid_muscle_raises: np.ndarray
    margin: np.ndarray
    margin_eye: np.ndarray
    margin_side: np.ndarray
    margin_ring: np.ndarray
    eye_centres: np.ndarray
    eye_radius: np.ndarray
    followers: np.ndarray
    follower_neighbours: np.ndarray
    follower_weights: np.ndarray


# --- building ------------------------------------------------------------------------------


def build_lid_rig(model: FaceModel, definitions) -> LidRig | None:
    """The lid membranes for the lid muscles among ``definitions`` (None when there are
    none). Raises DataError when a lid muscle's canthi are not on an eye opening."""
    from scipy.sparse.csgraph import dijkstra

    from .neighbours import edge_graph, triangle_edges

    lid_muscles = [(m, d) for m, d in enumerate(definitions) if d.kind == "lid"]
    if not lid_muscles:
        return None
    rest = model.neutral.astype(np.float64)
    face = model.region("face")
    face_triangles = model.triangles(face)
    graph = edge_graph(rest, triangle_edges(face_triangles))
    names = ("vertices", "eye", "side", "held", "clearance", "distance", "margin", "margin_eye",
             "margin_side", "margin_ring")  # fmt: skip
    parts = {k: [] for k in names}
    centres, radii, triangles = [], [], []
    followers, follower_neighbours, follower_weights = [], [], []
    offset = 0
    for eye, side_name in enumerate(EYE_SIDES):
        eyeball = model.region(f"eyeball_{side_name}")
        centre = _sphere_centre(rest[eyeball])
        opening = _eye_opening(model, face, centre)
        upper, lower = _split_at_canthi(rest, opening, centre)
        for _, definition in lid_muscles:
            if (definition.side == "L") != (eye == 0):
                continue
            if not set(definition.anchors) <= {int(upper[0]), int(upper[-1])}:
                raise DataError(
                    f"Lid muscle {definition.name}: its anchors {list(definition.anchors)} "
                    f"must be the {side_name} eye's canthi, {int(upper[0])} (medial) and "
                    f"{int(upper[-1])} (lateral) in muscles.toml."
                )
        loop = np.concatenate([upper, lower[1:-1]])
        distance, _, source = dijkstra(graph, indices=loop, min_only=True,
                                       return_predecessors=True, limit=RIM_CM)  # fmt: skip
        members = np.flatnonzero(np.isfinite(distance))
        local = np.full(model.vertex_count, -1, dtype=np.int64)
        local[members] = np.arange(len(members))
        inside = np.all(local[face_triangles] >= 0, axis=1)
        tris = local[face_triangles[inside]]
        # A vertex of the membrane with an edge leaving it is on the rim.
        edges = triangle_edges(face_triangles)
        crossing = (local[edges[:, 0]] >= 0) != (local[edges[:, 1]] >= 0)
        rim = np.unique(edges[crossing])
        held = np.zeros(len(members), dtype=bool)
        held[local[rim[local[rim] >= 0]]] = True
        held[local[[upper[0], upper[-1]]]] = True
        side = np.where(np.isin(source[members], upper[1:-1]), UPPER, LOWER)
        at_canthus = np.isin(source[members], [upper[0], upper[-1]])
        canthus_height = rest[source[members[at_canthus]], 1]
        side[at_canthus] = np.where(rest[members[at_canthus], 1] >= canthus_height, UPPER, LOWER)
        radius_table = _radius_table(rest, model.triangles(eyeball), centre)
        gap = _radial_gap(rest[members], centre, radius_table)
        parts["vertices"].append(members)
        parts["eye"].append(np.full(len(members), eye))
        parts["side"].append(side)
        parts["held"].append(held)
        parts["distance"].append(distance[members])
        parts["clearance"].append(np.clip(gap, None, LID_THICKNESS_CM))
        front = _front_ring(rest, face_triangles, loop, members, side, centre)
        for lid, path, ring in ((UPPER, upper[1:-1], 0), (LOWER, lower[1:-1], 0),
                                (UPPER, front[UPPER], 1), (LOWER, front[LOWER], 1)):  # fmt: skip
            parts["margin"].append(local[path] + offset)
            parts["margin_eye"].append(np.full(len(path), eye))
            parts["margin_side"].append(np.full(len(path), lid))
            parts["margin_ring"].append(np.full(len(path), ring))
        triangles.append(tris + offset)
        centres.append(centre)
        radii.append(radius_table)
        # Lashes, caruncle and the eye's shells follow their nearest membrane vertices.
        from scipy.spatial import cKDTree

        follow = np.concatenate([model.region(f"{r}_{side_name}") for r in FOLLOWER_REGIONS])
        gaps, nearest = cKDTree(rest[members]).query(rest[follow], k=4)
        weights = 1.0 / (gaps + 0.02)
        followers.append(follow)
        follower_neighbours.append(nearest + offset)
        follower_weights.append(weights / weights.sum(axis=1, keepdims=True))
        offset += len(members)

    cat = {k: np.concatenate(v) for k, v in parts.items()}
    triangles = np.concatenate(triangles).astype(np.int32)
    positions = rest[cat["vertices"]]
    rest_inverse, areas = _triangle_frames(positions[triangles])
    distance = cat["distance"]
    attachment = _smoothstep(ATTACHED_FROM_CM, RIM_CM, distance)
    tarsus = np.zeros(len(distance))
    for lid, (full, gone) in TARSUS_CM.items():
        on = cat["side"] == lid
        tarsus[on] = 1.0 - _smoothstep(full, gone, distance[on])
    return LidRig(
        vertices=cat["vertices"].astype(np.int32),
        eye=cat["eye"].astype(np.int8),
        side=cat["side"].astype(np.int8),
        held=cat["held"],
        attachment=attachment.astype(np.float32),
        clearance=cat["clearance"].astype(np.float32),
        triangles=triangles,
        rest_inverse=rest_inverse.astype(np.float32),
        areas=areas.astype(np.float32),
        tarsus=tarsus.astype(np.float32),
        lid_muscles=np.array([m for m, _ in lid_muscles], dtype=np.int16),
        lid_muscle_eye=np.array([0 if d.side == "L" else 1 for _, d in lid_muscles], np.int8),
        lid_muscle_lids=np.array(
            [
                (1 if "upper" in d.lids else 0) + (2 if "lower" in d.lids else 0)
                for _, d in lid_muscles
            ],
            dtype=np.int8,
        ),  # fmt: skip
        lid_muscle_raises=np.array([d.action == "raise" for _, d in lid_muscles], dtype=bool),
        margin=cat["margin"].astype(np.int32),
        margin_eye=cat["margin_eye"].astype(np.int8),
        margin_side=cat["margin_side"].astype(np.int8),
        margin_ring=cat["margin_ring"].astype(np.int8),
        eye_centres=np.array(centres, dtype=np.float32),
        eye_radius=np.array(radii, dtype=np.float32),
        followers=np.concatenate(followers).astype(np.int32),
        follower_neighbours=np.concatenate(follower_neighbours).astype(np.int32),
        follower_weights=np.concatenate(follower_weights).astype(np.float32),
    )


def _smoothstep(low: float, high: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _sphere_centre(points: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre (3,) of points (P, 3)."""
    system = np.c_[2.0 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(system, (points**2).sum(axis=1), rcond=None)[0]
    return solution[:3]


def _eye_opening(model: FaceModel, face: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The face region's boundary loop nearest an eyeball centre (ICT vertices, in order)."""
    from scipy.sparse.csgraph import connected_components

    from .neighbours import edge_graph
    from .tissue import boundary_loop, open_edges

    edges = open_edges(model.triangles(face))
    _, part = connected_components(edge_graph(model.neutral, edges), directed=False)
    on_boundary = np.unique(edges)
    gaps = np.linalg.norm(model.neutral[on_boundary] - centre, axis=1)
    nearest = on_boundary[np.argmin(gaps)]
    if gaps.min() > 3.0:
        raise DataError("The face model has no eye opening near its eyeball; check the data.")
    return boundary_loop(edges[part[edges[:, 0]] == part[nearest]])


def _split_at_canthi(rest, opening, centre) -> tuple[np.ndarray, np.ndarray]:
    """The opening split at its medial and lateral ends: (upper, lower) margins, each
    from the medial canthus to the lateral one, both canthi included in both."""
    x = rest[opening, 0]
    medial_is_min = abs(x.min()) < abs(x.max())  # the medial canthus lies nearer x = 0
    medial = int(np.argmin(x) if medial_is_min else np.argmax(x))
    loop = np.roll(opening, -medial)
    lateral = int(
        np.flatnonzero(loop == opening[np.argmax(x) if medial_is_min else np.argmin(x)])[0]
    )
    one = loop[: lateral + 1]
    other = np.concatenate([loop[lateral:], loop[:1]])[::-1]
    if rest[one[1:-1], 1].mean() < rest[other[1:-1], 1].mean():
        one, other = other, one
    return one, other


def _front_ring(rest, face_triangles, loop, members, side, centre) -> dict[int, np.ndarray]:
    """The anterior lid margins: the face vertices one edge from the opening, split by lid
    (``side`` of the membrane ``members``) and ordered medial to lateral by azimuth about
    the eye's centre. ICT's opening is the posterior margin, against the eye; the skin
    folds over the margin there, and the next ring is the visible lid line."""
    from .neighbours import triangle_edges

    edges = triangle_edges(face_triangles)
    on_loop = np.zeros(len(rest), dtype=bool)
    on_loop[loop] = True
    touching = edges[on_loop[edges[:, 0]] ^ on_loop[edges[:, 1]]]
    ring = np.unique(np.where(on_loop[touching[:, 0]], touching[:, 1], touching[:, 0]))
    lid_of = dict(zip(members.tolist(), side.tolist(), strict=True))
    offset = rest[ring] - centre
    azimuth = np.arctan2(offset[:, 0], offset[:, 2]) * np.sign(centre[0])  # medial first
    out = {}
    for lid in (UPPER, LOWER):
        chosen = np.array([lid_of.get(int(v)) == lid for v in ring])
        out[lid] = ring[chosen][np.argsort(azimuth[chosen])]
    return out


def _directions(polar: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Unit vectors (…, 3) at polar angle from +z and azimuth about +z from +x."""
    polar, azimuth = np.broadcast_arrays(polar, azimuth)
    s = np.sin(polar)
    return np.stack([s * np.cos(azimuth), s * np.sin(azimuth), np.cos(polar)], axis=-1)


def _radius_table(rest, triangles, centre) -> np.ndarray:
    """The eyeball's outer surface distance from ``centre`` along a polar × azimuth grid of
    rays (P, A) cm (the farthest hit: the cornea and sclera over the iris), 0 where a ray
    misses."""
    polar = np.linspace(0.0, _POLAR_MAX, _POLAR_STEPS)
    azimuth = np.linspace(0.0, 2 * np.pi, _AZIMUTH_STEPS, endpoint=False)
    rays = _directions(polar[:, None], azimuth[None, :]).reshape(-1, 3)
    a, b, c = (rest[triangles[:, i]] - centre for i in range(3))
    e1, e2 = b - a, c - a
    table = np.zeros(len(rays))
    to_origin = -a  # Möller–Trumbore, every ray from the centre
    q = np.cross(to_origin, e1)  # (T, 3): independent of the ray
    along_q = np.einsum("tk,tk->t", e2, q)
    for start in range(0, len(rays), 512):
        d = rays[start : start + 512]
        p = np.cross(d[:, None, :], e2[None])  # (R, T, 3)
        det = np.einsum("rtk,tk->rt", p, e1)
        safe = np.where(np.abs(det) < 1e-12, 1e-12, det)
        u = np.einsum("tk,rtk->rt", to_origin, p) / safe
        v = (d @ q.T) / safe
        t = along_q[None, :] / safe
        hit = (np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        table[start : start + 512] = np.where(hit, t, 0.0).max(axis=1)
    return table.reshape(_POLAR_STEPS, _AZIMUTH_STEPS)


def eyeball_radius(table: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The eyeball's surface distance (P,) along unit directions (P, 3) from its centre,
    bilinear in the table (P, A); 0 behind the table's reach (no collision there)."""
    polar = np.arccos(np.clip(directions[:, 2], -1.0, 1.0)) / _POLAR_MAX * (_POLAR_STEPS - 1)
    azimuth = np.arctan2(directions[:, 1], directions[:, 0]) % (2 * np.pi)
    azimuth = azimuth / (2 * np.pi) * _AZIMUTH_STEPS
    i = np.clip(np.floor(polar).astype(np.int64), 0, _POLAR_STEPS - 2)
    j = np.floor(azimuth).astype(np.int64) % _AZIMUTH_STEPS
    fi, fj = np.clip(polar - i, 0.0, 1.0), azimuth - np.floor(azimuth)
    j1 = (j + 1) % _AZIMUTH_STEPS
    value = ((1 - fi) * ((1 - fj) * table[i, j] + fj * table[i, j1])
             + fi * ((1 - fj) * table[i + 1, j] + fj * table[i + 1, j1]))  # fmt: skip
    return np.where(polar <= _POLAR_STEPS - 1, value, 0.0)


def _radial_gap(points, centre, table) -> np.ndarray:
    """Distance (P,) cm of points outside the eyeball along the ray from its centre
    (negative inside)."""
    offset = points - centre
    rho = np.linalg.norm(offset, axis=1)
    return rho - eyeball_radius(table, offset / rho[:, None])


def _triangle_frames(corners: np.ndarray):
    """Per triangle (T, 3, 3) corners: the inverse rest edge matrix (T, 2, 2) in an
    orthonormal 2D frame of its plane, and the area (T,)."""
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    b1 = e1 / np.linalg.norm(e1, axis=1, keepdims=True)
    b2 = e2 - np.einsum("ij,ij->i", e2, b1)[:, None] * b1
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    frames = np.stack([b1, b2], axis=2)
    edges = np.stack([e1, e2], axis=2)  # (T, 3, 2)
    rest = np.einsum("tki,tkj->tij", frames, edges)  # (T, 2, 2) upper triangular
    areas = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    return np.linalg.inv(rest), areas


# --- solving -------------------------------------------------------------------------------

MEMBRANE_ITERATIONS = 30  # most local/global iterations per frame, warm-started
COLD_ITERATIONS = 120  # the same from the plates (first frame, after a jump)
MEMBRANE_TOLERANCE_CM = 1e-3  # stop when no vertex moved more than 10 µm in an iteration
ATTACHMENT_STIFFNESS = 1.0  # relative to the membrane (per vertex, at full attachment)
DRIVE_STIFFNESS = 20.0  # the tarsal plates' pull toward where the lid muscles take them
CONTACT_STIFFNESS = 0.5  # the eyeball and margin contact (projected hard each iteration)
# A membrane has no bending stiffness: where a lid is compressed it could buckle in or out,
# and which depended on the frames before. This keeps the skin stage's curvature (the
# umbrella Laplacian of the lid), so a frame has one answer.
BENDING_STIFFNESS = 0.5
# Below these the layer leaves the skin stage's lids alone: a lid muscle level moving a
# margin under 0.1 mm, a lid vertex less than 0.05 mm inside its eye (issue 19 allows 0.1).
IDLE_LEVEL = 0.01
IDLE_DEPTH_CM = 0.005


class EyelidLayer:
    """Lids on top of a skin stage: ``layer(positions, head_transform, activations)``
    rewrites the lid rows (and the lashes', shells', caruncles') of an ICT position buffer
    (V, 3) float32 cm in place and returns it.

    ``activations`` (M,) float32 per rig muscle (only the lid muscles are read). The solve
    is warm-started from the previous frame's correction; ``reset`` forgets it (the
    player's frame rule). With the lid muscles relaxed and no lid inside an eye it returns
    at once, the buffer untouched."""

    def __init__(self, rig):
        import scipy.sparse as sp

        from .factor import Factor, resolve_backend

        lids: LidRig = rig.lids
        self.lids = lids
        self.vertices = lids.vertices.astype(np.int64)
        self.triangles = lids.triangles.astype(np.int64)
        count, t_count = len(self.vertices), len(self.triangles)
        # F_t column k = Σ_i coefficient[t, k, i] · x[triangle[t, i]]  (F = E · rest_inverse)
        inv = lids.rest_inverse.astype(np.float64)
        self.coefficient = np.stack([-(inv[:, 0, :] + inv[:, 1, :]), inv[:, 0, :], inv[:, 1, :]], 2)
        rows = np.repeat(np.arange(2 * t_count), 3)
        cols = np.repeat(self.triangles, 2, axis=0).ravel()
        gradient = sp.csr_matrix((self.coefficient.reshape(-1), (rows, cols)),
                                 shape=(2 * t_count, count))  # fmt: skip
        self.gradient = gradient  # (2T, L): rows 2t, 2t+1 are the columns of F_t
        weight = np.repeat(lids.areas.astype(np.float64), 2)
        self.scatter = (gradient.T @ sp.diags(weight)).tocsr()  # (L, 2T)
        self.attachment = ATTACHMENT_STIFFNESS * lids.attachment.astype(np.float64)
        self.drive = DRIVE_STIFFNESS * lids.tarsus.astype(np.float64)
        diagonal = self.attachment + self.drive + CONTACT_STIFFNESS
        laplacian = _umbrella_laplacian(self.triangles, count)
        self.bending = (BENDING_STIFFNESS * laplacian.T @ laplacian).tocsr()
        matrix = (self.scatter @ gradient + self.bending + sp.diags(diagonal)).tocsr()
        self.free = np.flatnonzero(~lids.held)
        self.held = np.flatnonzero(lids.held)
        self.held_coupling = matrix[self.free][:, self.held].tocsr()
        self.factor = Factor(matrix[self.free][:, self.free].tocsc(), resolve_backend("auto"))
        self.eye = lids.eye.astype(np.int64)
        self.centres = lids.eye_centres.astype(np.float64)
        self.clearance = lids.clearance.astype(np.float64)
        self.driven = np.flatnonzero(lids.tarsus > 0)
        self.max_contractions = rig.max_contractions.astype(np.float64)
        margin = lids.margin.astype(np.int64)

        def ring(eye, side, number):
            chosen = (lids.margin_eye == eye) & (lids.margin_side == side)
            return margin[chosen & (lids.margin_ring == number)]

        # The anterior margins meet first; the posterior ones lie 4 mm apart behind them.
        self.front = [(ring(eye, UPPER, 1), ring(eye, LOWER, 1)) for eye in (0, 1)]
        self.correction: np.ndarray | None = None
        self.iterations = 0
        self._allocate_kernel_buffers(count, t_count)

    def _allocate_kernel_buffers(self, count: int, t_count: int) -> None:
        """Warp arrays for the two kernels (sim.eyelid_kernels) and numpy views of them."""
        import warp as wp

        def buffer(length, dtype=wp.vec3):
            array = wp.zeros(length, dtype=dtype, device="cpu")
            return array, array.numpy()

        self._column_rows, self._columns_view = buffer(2 * t_count)
        self._shapes, self._shapes_view = buffer(t_count)
        self._shapes_of = None  # the frame's target shapes the buffer holds
        self._targets, self._targets_view = buffer(2 * t_count)
        self._points, self._points_view = buffer(count)
        self._pushed, self._pushed_view = buffer(count)
        self._depth, self._depth_view = buffer(count, wp.float32)
        self._eye = wp.array(self.eye.astype(np.int32), dtype=wp.int32, device="cpu")
        self._centres = wp.array(self.centres.astype(np.float32), dtype=wp.vec3, device="cpu")
        self._radius = wp.array(self.lids.eye_radius.astype(np.float32), dtype=float, device="cpu")
        self._clearance = wp.array(self.clearance.astype(np.float32), dtype=float, device="cpu")

    def reset(self) -> None:
        self.correction = None

    def __call__(self, positions, head_transform, activations) -> np.ndarray:
        rotation = np.asarray(head_transform, dtype=np.float64)[:3, :3]
        translation = np.asarray(head_transform, dtype=np.float64)[:3, 3]
        skin = (positions[self.vertices].astype(np.float64) - translation) @ rotation
        activations = np.asarray(activations, dtype=np.float64)
        level = activations[self.lids.lid_muscles] * self.max_contractions[self.lids.lid_muscles]
        level[level < IDLE_LEVEL] = 0.0
        self.iterations = 0
        pushed = self._push_out(skin)  # the skin stage's lids, outside the eyes
        if not level.any() and self._depth_view.max() < IDLE_DEPTH_CM:
            self.correction = None
            return positions
        held = pushed[self.held]  # the rim and canthi: the skin stage's, outside
        plates = self._plates(skin, level)
        # Warm: the previous frame's correction; cold (a jump, the first frame): the plates
        # where the muscles take them, the rest of the lid where the skin stage put it.
        warm = self.correction is not None
        x = skin + self.correction if warm else skin + self.lids.tarsus[:, None] * (plates - skin)
        x[self.held] = held
        shapes = self._stretches(skin)
        fixed = self.attachment[:, None] * skin + self.drive[:, None] * plates + self.bending @ skin
        held_rhs = self.held_coupling @ held
        x = self._contact(x)
        for iteration in range(MEMBRANE_ITERATIONS if warm else COLD_ITERATIONS):
            # x is feasible here (projected), so the soft contact term aims at x itself
            rhs = self.scatter @ self._rotated_targets(x, shapes) + fixed + CONTACT_STIFFNESS * x
            solved = self.factor.solve((rhs[self.free] - held_rhs).copy())
            previous = x[self.free]
            x[self.free] = solved
            x = self._contact(x)  # hard contact on top of the soft term
            x[self.held] = held
            self.iterations = iteration + 1
            if np.abs(x[self.free] - previous).max() < MEMBRANE_TOLERANCE_CM:
                break
        self.correction = x - skin
        positions[self.vertices] = (x @ rotation.T + translation).astype(np.float32)
        follow = np.einsum("fk,fkd->fd", self.lids.follower_weights,
                           self.correction[self.lids.follower_neighbours])  # fmt: skip
        positions[self.lids.followers] += (follow @ rotation.T).astype(np.float32)
        return positions

    def _stretches(self, skin) -> np.ndarray:
        """The skin stage's stretch of each triangle, the shape the membrane aims for (the
        polar part of its deformation from rest): symmetric 2×2 as (T, 3) = s00, s01, s11."""
        g0, g1 = self._columns(skin)
        return _sqrt_2x2(np.einsum("ij,ij->i", g0, g0), np.einsum("ij,ij->i", g0, g1),
                         np.einsum("ij,ij->i", g1, g1))  # fmt: skip

    def _columns(self, x):
        """The two columns of every triangle's deformation gradient, (T, 3) each."""
        rows = (self.gradient @ x).reshape(-1, 2, 3)
        return rows[:, 0], rows[:, 1]

    def _rotated_targets(self, x, shapes) -> np.ndarray:
        """The best rotation R of each target shape K onto the current triangles, as the
        rows of (R·K)ᵀ (2T, 3) for the scatter (kernel ``rotated_targets``)."""
        import warp as wp

        from .eyelid_kernels import rotated_targets

        self._columns_view[:] = self.gradient @ x
        if shapes is not self._shapes_of:  # once a frame
            self._shapes_view[:] = shapes
            self._shapes_of = shapes
        wp.launch(rotated_targets, dim=len(shapes), inputs=[self._column_rows, self._shapes],
                  outputs=[self._targets], device="cpu")  # fmt: skip
        return self._targets_view

    def _plates(self, skin, level) -> np.ndarray:
        """Where the lid muscles take each tarsal-plate vertex (L, 3) (the skin stage's
        position elsewhere): at its azimuth about the eye's centre, its lid's margin
        moves ``level`` of the way to the closing line (or, raising, above it) in
        elevation and radius, and the plate slides with it, kept outside the eyeball."""
        out = skin.copy()
        lids = self.lids
        for eye, (upper, lower) in enumerate(self.front):
            on = self.driven[self.eye[self.driven] == eye]
            mine = lids.lid_muscle_eye == eye
            if not level[mine].any():
                continue
            centre = self.centres[eye]
            azimuth, elevation, radius = _spherical(skin[on] - centre)
            margin = {}
            for side, ring in ((UPPER, upper), (LOWER, lower)):
                a, e, r = _spherical(skin[ring] - centre)
                order = np.argsort(a)
                margin[side] = (np.interp(azimuth, a[order], e[order]),
                                np.interp(azimuth, a[order], r[order]))  # fmt: skip
            meet = [margin[LOWER][k] + MEET_FRACTION * (margin[UPPER][k] - margin[LOWER][k])
                    for k in (0, 1)]  # fmt: skip
            shift = np.zeros((2, len(on)))
            side = lids.side[on]
            for j in np.flatnonzero(mine & (level > 0)):
                for lid in (UPPER, LOWER):
                    if not lids.lid_muscle_lids[j] & lid:
                        continue
                    travel = [meet[k] - margin[lid][k] for k in (0, 1)]
                    sign = -1.0 if lids.lid_muscle_raises[j] else 1.0
                    shift[:, side == lid] += sign * level[j] * np.array(travel)[:, side == lid]
            moved = _cartesian(azimuth, elevation + shift[0], radius + shift[1])
            out[on] = centre + moved
        return self._push_out(out)

    def _push_out(self, x) -> np.ndarray:
        """A copy of x (L, 3) with every lid vertex inside its eyeball (beyond its
        clearance) moved out along the ray from the eye's centre (kernel ``push_out``);
        how deep each one was (cm) is left in ``_depth_view``."""
        import warp as wp

        from .eyelid_kernels import push_out

        self._points_view[:] = x
        wp.launch(push_out, dim=len(x),
                  inputs=[self._points, self._eye, self._centres, self._radius, self._clearance,
                          float(_POLAR_MAX)],
                  outputs=[self._pushed, self._depth], device="cpu")  # fmt: skip
        return self._pushed_view.astype(np.float64)

    def _contact(self, x) -> np.ndarray:
        """x with every lid vertex pushed out of its eyeball and every crossing pair of
        margins met halfway: the projection of the contact constraints."""
        out = self._push_out(x)
        for eye, (upper, lower) in enumerate(self.front):
            _meet_margins(out, self.centres[eye], upper, lower)
        return out


def _umbrella_laplacian(triangles: np.ndarray, count: int):
    """The uniform graph Laplacian (L, L) of a triangle mesh: each vertex minus the mean of
    its edge neighbours."""
    import scipy.sparse as sp

    edges = np.unique(np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
    adjacency = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), (count, count))
    adjacency = (adjacency + adjacency.T).tocsr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return sp.identity(count, format="csr") - sp.diags(1.0 / np.maximum(degree, 1.0)) @ adjacency


def _spherical(offset: np.ndarray):
    """Azimuth (about +y, from +z toward +x), elevation (toward +y) and radius of offsets
    (P, 3) from an eye's centre."""
    horizontal = np.hypot(offset[:, 0], offset[:, 2])
    return (np.arctan2(offset[:, 0], offset[:, 2]), np.arctan2(offset[:, 1], horizontal),
            np.hypot(horizontal, offset[:, 1]))  # fmt: skip


def _cartesian(azimuth, elevation, radius) -> np.ndarray:
    flat = radius * np.cos(elevation)
    return np.stack([flat * np.sin(azimuth), radius * np.sin(elevation),
                     flat * np.cos(azimuth)], axis=1)  # fmt: skip


def _meet_margins(x, centre, upper, lower) -> None:
    """Where the upper margin has passed below the lower one (elevation about the eye's
    centre at the same azimuth), move both to the halfway elevation, in place."""
    up_azimuth, up_elevation, up_radius = _spherical(x[upper] - centre)
    low_azimuth, low_elevation, low_radius = _spherical(x[lower] - centre)
    order = np.argsort(low_azimuth)
    lower_at_upper = np.interp(up_azimuth, low_azimuth[order], low_elevation[order])
    order = np.argsort(up_azimuth)
    upper_at_lower = np.interp(low_azimuth, up_azimuth[order], up_elevation[order])
    for ring, azimuth, elevation, radius, other, sign in (
        (upper, up_azimuth, up_elevation, up_radius, lower_at_upper, 1.0),
        (lower, low_azimuth, low_elevation, low_radius, upper_at_lower, -1.0),
    ):
        crossed = sign * (elevation - other) < 0.0
        if crossed.any():
            meet = 0.5 * (elevation[crossed] + other[crossed])
            x[ring[crossed]] = centre + _cartesian(azimuth[crossed], meet, radius[crossed])


def _sqrt_2x2(a00, a01, a11) -> np.ndarray:
    """Square roots of symmetric positive semi-definite 2×2 matrices given by their
    entries (T,): (T, 3) = r00, r01, r11 (closed form: √A = (A + √det·I) / √(tr A + 2√det))."""
    root = np.sqrt(np.maximum(a00 * a11 - a01 * a01, 0.0))
    scale = np.sqrt(np.maximum(a00 + a11 + 2.0 * root, 1e-24))
    return np.stack([(a00 + root) / scale, a01 / scale, (a11 + root) / scale], axis=1)


def _inverse_sym_2x2(matrix: np.ndarray):
    """Entries (m00, m01, m11) of the inverses of symmetric 2×2 matrices (T, 3), (T, 1) each."""
    a, b, d = matrix[:, 0], matrix[:, 1], matrix[:, 2]
    det = a * d - b * b
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    return (d / det)[:, None], (-b / det)[:, None], (a / det)[:, None]
