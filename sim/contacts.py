"""Contact for the simulator: sphere and plane colliders on the embedded skin, and
lip-to-lip contact on the HR mesh, as hard unilateral constraints that never refactor.

Each global step's unconstrained minimiser x̃ is corrected by contact forces that solve a
small complementarity problem on the simulator's factor (``Contacts.project``). Rows are
found by detection during the step and kept for the frame (``ContactRows``); their
responses K⁻¹B cost one solve per new row, so the number of rows a frame may hold is
bounded (``MAX_CONTACT_ROWS``): a collider that would press more of the face than that
(one enclosing the head, say) is refused with a clear error instead of a solve that grows
without bound.

Every row's plane is taken again at each iterate, and for the lips from the other lip's
smooth normal (its vertex normals interpolated), so the constrained step is a continuous
function of the iterate: with flat triangle normals a lip node sliding from one triangle
to the next saw its plane turn by the angle between them, and the iteration cycled
(issue 19: pressed-lip HR frames stalled at residuals 1e-2..0.2). The simulator moves
Anderson's extrapolations onto the rows too (``Contacts.hold``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import warp as wp

from . import solver_kernels as kernels
from .controls import Plane, Sphere
from .errors import ControlError
from .simmesh import FREE

CONTACT_ROUNDS = 8  # contact detections per global step
LIP_DEPTH_CM = 0.3  # a lip node this far behind a triangle of the other lip is not touching it
LIP_BARY_SLACK = 0.05  # tolerance of "projects onto the triangle" (barycentric)
LIP_NEAR_CM = 0.02  # lip nodes this close to the other lip get their row at a frame's start
LIP_CANDIDATES = 6  # triangles of the other lip tried per lip node
LCP_PASSES = 8  # growths of the contact problem's pushing rows
MAX_CONTACT_ROWS = 600  # skin points held by colliders in one frame (dense m × m problem)


def solve_lcp(coupling: np.ndarray, gaps: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Forces λ ≥ 0 (m,) with W λ + gaps ≥ 0 and λ ⟂ (W λ + gaps), W (m, m) symmetric
    positive semi-definite: the minimiser of ½ λᵀWλ + gapsᵀλ over λ ≥ 0.

    Solved on the rows that can push: violated now or pushing last time (``guess``), by
    non-negative least squares on the square root of their block of W (where rows
    conflict: the least violation); rows that the forces push into violation join and the
    block is solved again."""
    from scipy.optimize import nnls

    chosen = (guess > 0.0) | (gaps < 0.0)
    forces = np.zeros(len(gaps))
    tolerance = 1e-9 * max(1.0, float(np.abs(gaps).max(initial=0.0)))
    for _ in range(LCP_PASSES):
        index = np.flatnonzero(chosen)
        forces[:] = 0.0
        if len(index):
            # ½λᵀWλ + gᵀλ = ½‖Lᵀλ + L⁻¹g‖² + const with W = LLᵀ (slightly regularised)
            block = coupling[np.ix_(index, index)]
            block = block + np.eye(len(index)) * (1e-10 * np.trace(block) / len(index) + 1e-300)
            lower = np.linalg.cholesky(block)
            target = -np.linalg.solve(lower, gaps[index])
            forces[index], _ = nnls(lower.T, target)
        violated = ~chosen & (coupling[:, index] @ forces[index] + gaps < -tolerance)
        if not violated.any():
            break
        chosen |= violated
    return forces


def barycentric_on_triangles(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (..., 3) of points (..., 3) in the planes of triangles
    (..., 3, 3) they lie in."""
    e1 = corners[..., 1, :] - corners[..., 0, :]
    e2 = corners[..., 2, :] - corners[..., 0, :]
    r = points - corners[..., 0, :]
    d11, d12, d22 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    r1, r2 = (r * e1).sum(-1), (r * e2).sum(-1)
    det = np.maximum(d11 * d22 - d12 * d12, 1e-30)
    u = (d22 * r1 - d12 * r2) / det
    v = (d11 * r2 - d12 * r1) / det
    return np.stack([1.0 - u - v, u, v], axis=-1)


@dataclass
class ContactRows:
    """Unilateral constraints of one frame, one row each: Σ_k w_k nᵀx_k ≥ offset + margin
    over four nodes (m, 4) with weights (m, 4), fixed when the row is found. A collider row
    (``collider`` ≥ 0) holds a skin point (``key`` = its embedded index) outside that
    collider; a lip row (``collider`` −1, ``key`` −1 − (node · T + triangle)) holds a lip
    node outside the other lip at a point of one of its triangles (weights (1, −b), b fixed
    when found), no deeper than at rest (``rest_gap`` ≤ 0: the closed lips touch at rest).
    ``normals`` (m, 3) and ``offsets`` (m,) are the planes of the last step (they follow
    the iterate); ``forces`` (m,) its contact forces; ``basis`` (Z = K⁻¹B, BᵀZ)."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nodes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    collider: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    forces: np.ndarray = field(default_factory=lambda: np.zeros(0))
    normals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rest_gap: np.ndarray = field(default_factory=lambda: np.zeros(0))
    basis: tuple | None = None

    def add(self, keys, nodes, weights, collider, rest_gap=None) -> int:
        fresh = ~np.isin(keys, self.keys)
        count = int(fresh.sum())
        rest_gap = np.zeros(len(keys)) if rest_gap is None else rest_gap
        self.rest_gap = np.r_[self.rest_gap, rest_gap[fresh]]
        self.forces = np.r_[self.forces, np.zeros(count)]
        self.normals = np.r_[self.normals, np.zeros((count, 3))]
        self.offsets = np.r_[self.offsets, np.zeros(count)]
        self.keys = np.r_[self.keys, keys[fresh]]
        self.nodes = np.r_[self.nodes, nodes[fresh]]
        self.weights = np.r_[self.weights, weights[fresh]]
        self.collider = np.r_[self.collider, collider[fresh]]
        return count


class Contacts:
    """The colliders and lip contact of one simulator, and the rows of the current frame.

    ``mesh`` the simulated SimMesh; ``free_nodes`` (n,) and ``free_slot`` (N,) the free
    nodes and each node's row among them (−1 prescribed); ``embedding`` the skin's
    Embedding in the mesh; ``vertex_positions`` the simulator's Warp array of node
    positions that detection reads; ``lip_zone`` turns lip-to-lip contact on (HR)."""

    def __init__(self, mesh, free_nodes, free_slot, embedding, vertex_positions, device,
                 margin_cm: float, lip_zone=None):  # fmt: skip
        self.rest_positions = mesh.rest_positions.astype(np.float64)
        self.free_nodes, self.free_slot = free_nodes, free_slot
        self.margin = float(margin_cm)
        self.embedding_nodes = mesh.tets[embedding.elements].astype(np.int64)  # (P, 4)
        self.embedding_weights = embedding.weights.astype(np.float64)
        # skin points a contact force can move: their element has a free node
        self.movable = (mesh.node_labels[self.embedding_nodes] == FREE).any(axis=1)
        self.device = device
        self.vertex_positions = vertex_positions
        count = len(embedding.vertices)
        self.point_nodes = wp.array(self.embedding_nodes.astype(np.int32), dtype=wp.int32,
                                    device=device)  # fmt: skip
        self.point_weights = wp.array(embedding.weights.astype(np.float32), dtype=wp.vec4,
                                      device=device)  # fmt: skip
        self.embedded_positions = wp.zeros(count, dtype=wp.vec3, device=device)
        self.depths = wp.zeros(count, dtype=float, device=device)
        self.nearest_collider = wp.zeros(count, dtype=wp.int32, device=device)
        self.spheres = wp.zeros(0, dtype=wp.vec4, device=device)
        self.plane_points = wp.zeros(0, dtype=wp.vec3, device=device)
        self.plane_normals = wp.zeros(0, dtype=wp.vec3, device=device)
        self._collider_key: tuple = ()
        self.sphere_centres = np.zeros((0, 3))
        self.sphere_radii = np.zeros(0)
        self.plane_point_values = np.zeros((0, 3))
        self.plane_normal_values = np.zeros((0, 3))
        self.colliding = False
        self.rows = ContactRows()
        self.lip_nodes = None
        if lip_zone is not None:
            self._prepare_lips(mesh, lip_zone)

    # --- set-up ------------------------------------------------------------------------------

    def _prepare_lips(self, mesh, lip_zone) -> None:
        """Lip contact surfaces, their nodes and the candidate triangles at rest."""
        from .hr_mesh import lip_contact_surfaces

        upper, lower = lip_contact_surfaces(mesh, lip_zone)
        if not len(upper) or not len(lower):
            return
        self.lip_triangles = np.r_[upper, lower].astype(np.int64)
        self._lip_sides = ((np.unique(lower), np.arange(len(upper))),
                           (np.unique(upper), len(upper) + np.arange(len(lower))))  # fmt: skip
        self.lip_nodes = np.concatenate([own for own, _ in self._lip_sides]).astype(np.int64)
        self._lip_slot = np.full(len(self.rest_positions), -1, np.int64)
        self._lip_slot[self.lip_nodes] = np.arange(len(self.lip_nodes))
        self._choose_lip_candidates(self.rest_positions)

    def _choose_lip_candidates(self, positions: np.ndarray) -> None:
        """Per lip node, the ``LIP_CANDIDATES`` triangles of the other lip nearest to it (by
        centroid) at ``positions`` (N, 3), and its depth behind each at rest where it faces
        it there (``lip_rest_depth`` (Q, k), ≤ 0: the closed lips overlap at rest), else 0.
        Chosen again at each frame's start: lips that slid along each other face other
        triangles than at rest."""
        from scipy.spatial import cKDTree

        candidates = []
        for own, other in self._lip_sides:
            k = min(LIP_CANDIDATES, len(other))
            centroids = positions[self.lip_triangles[other]].mean(axis=1)
            _, nearest = cKDTree(centroids).query(positions[own], k=k)
            candidates.append(other[nearest.reshape(len(own), k)])
        k = min(c.shape[1] for c in candidates)
        self.lip_candidates = np.concatenate([c[:, :k] for c in candidates])
        depth, *_, facing, _ = self._lip_geometry(self.rest_positions)
        self.lip_rest_depth = np.where(facing, np.minimum(depth, 0.0), 0.0)

    @property
    def active(self) -> bool:
        """Whether this frame has anything to hold: colliders or lip contact."""
        return self.colliding or self.lip_nodes is not None

    def begin_frame(self, colliders, positions: np.ndarray) -> None:
        """The frame's colliders (validated Sphere/Plane) and, with lip contact, rows for
        the lip nodes touching or within ``LIP_NEAR_CM`` of the other lip at the frame's
        start ``positions`` (N, 3), with their planes from there: the warm start lies
        close to the frame's solution, the first iterates may not."""
        spheres = [c for c in colliders if isinstance(c, Sphere)]
        planes = [c for c in colliders if isinstance(c, Plane)]
        self.colliding = bool(colliders)
        self.rows = ContactRows()
        if self.lip_nodes is not None:
            self._choose_lip_candidates(positions)
            self._lip_rows(positions, LIP_NEAR_CM)
        key = (tuple(spheres), tuple(planes))
        if key == self._collider_key:
            return
        self.sphere_centres = np.array([c.centre for c in spheres], np.float64).reshape(-1, 3)
        self.sphere_radii = np.array([c.radius for c in spheres], np.float64)
        self.plane_point_values = np.array([c.point for c in planes], np.float64).reshape(-1, 3)
        self.plane_normal_values = np.array([c.normal for c in planes], np.float64).reshape(-1, 3)
        d = self.device
        spheres_array = np.c_[self.sphere_centres, self.sphere_radii].astype(np.float32)
        self.spheres = wp.array(spheres_array, dtype=wp.vec4, device=d)
        self.plane_points = wp.array(self.plane_point_values.astype(np.float32), dtype=wp.vec3,
                                     device=d)  # fmt: skip
        self.plane_normals = wp.array(self.plane_normal_values.astype(np.float32),
                                      dtype=wp.vec3, device=d)  # fmt: skip
        self._collider_key = key

    # --- detection ---------------------------------------------------------------------------

    def skin_depths(self) -> np.ndarray:
        """Depth (P,) of every embedded skin point in the colliders (> 0 inside) at the
        uploaded positions; the collider of each in ``nearest_collider``."""
        wp.launch(
            kernels.interpolate_points,
            dim=len(self.embedded_positions),
            inputs=[self.vertex_positions, self.point_nodes, self.point_weights],
            outputs=[self.embedded_positions],
            device=self.device,
        )
        wp.launch(
            kernels.detect_contacts,
            dim=len(self.embedded_positions),
            inputs=[self.embedded_positions, self.spheres, self.plane_points, self.plane_normals],
            outputs=[self.depths, self.nearest_collider],
            device=self.device,
        )
        return self.depths.numpy()

    def skin_penetration_cm(self) -> float:
        """The deepest skin point inside a collider (cm) at the uploaded positions."""
        if not self.colliding:
            return 0.0
        return float(max(self.skin_depths().max(), 0.0))

    def _collider_rows(self) -> int:
        """Rows for skin points inside a collider (within the margin) at the uploaded
        positions; returns how many are new. Refuses a set of rows the dense contact
        problem cannot hold (MAX_CONTACT_ROWS)."""
        inside = np.flatnonzero(self.skin_depths() > -self.margin)
        inside = inside[self.movable[inside]]
        colliders = self.nearest_collider.numpy()[inside].astype(np.int64)
        if len(np.union1d(self.rows.keys, inside)) > MAX_CONTACT_ROWS:
            raise ControlError(self._too_many(colliders))
        return self.rows.add(
            inside, self.embedding_nodes[inside], self.embedding_weights[inside], colliders
        )

    def _too_many(self, colliders: np.ndarray) -> str:
        worst = int(np.bincount(colliders).argmax())
        count = int((colliders == worst).sum())
        if worst < len(self.sphere_radii):
            what = f"colliders[{worst}] (sphere of radius {self.sphere_radii[worst]:g} cm)"
        else:
            what = f"colliders[{worst}] (plane)"
        return (
            f"{what} presses {count} skin points at once, more than the {MAX_CONTACT_ROWS} "
            "the contact solver holds in one frame: a collider should touch part of the face "
            "(a finger, a press on the cheek), not enclose or flatten it; make it smaller or "
            "move it out of the head."
        )

    def _vertex_normals(self, positions: np.ndarray) -> np.ndarray:
        """Area-weighted vertex normals (N, 3) of the lip contact surfaces at ``positions``
        (N, 3), unnormalised (0 off the surfaces)."""
        corners = positions[self.lip_triangles]
        faces = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normals = np.zeros_like(positions)
        np.add.at(normals, self.lip_triangles.ravel(), np.repeat(faces, 3, axis=0))
        return normals

    def _lip_geometry(self, positions: np.ndarray):
        """Each lip node against its candidate triangles of the other lip (Q, k) at
        ``positions`` (N, 3): (signed depth along the other lip's smooth normal at the
        node's projection onto the triangle, > 0 on the outer side; the surface points
        (Q, k, 3) and smooth unit normals (Q, k, 3) there; whether the node projects onto
        the triangle within reach; the projection's barycentric weights (Q, k, 3)). The
        smooth normal (vertex normals interpolated) turns continuously as a node slides
        from one triangle to the next."""
        triangles = self.lip_triangles[self.lip_candidates]  # (Q, k, 3)
        corners = positions[triangles]  # (Q, k, 3, 3)
        normals = np.cross(corners[..., 1, :] - corners[..., 0, :],
                           corners[..., 2, :] - corners[..., 0, :])  # fmt: skip
        vertex_normals = self._vertex_normals(positions)
        normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
        point = positions[self.lip_nodes][:, None, :]
        flat = np.einsum("qkd,qkd->qk", point - corners[..., 0, :], normals)
        bary = barycentric_on_triangles(point - flat[..., None] * normals, corners)
        facing = (bary.min(axis=-1) > -LIP_BARY_SLACK) & (flat > -LIP_DEPTH_CM)
        weights = np.clip(bary, 0.0, None)
        weights /= np.maximum(weights.sum(axis=-1, keepdims=True), 1e-12)
        smooth = np.einsum("qkc,qkcd->qkd", weights, vertex_normals[triangles])
        smooth /= np.maximum(np.linalg.norm(smooth, axis=-1, keepdims=True), 1e-12)
        surface = np.einsum("qkc,qkcd->qkd", weights, corners)
        depth = np.einsum("qkd,qkd->qk", point - surface, smooth)
        return depth, surface, smooth, facing, weights

    def lip_penetration_cm(self, volume_positions: np.ndarray) -> float:
        """How far (cm) the deepest lip node lies inside the other lip beyond where it lies
        at rest, for mesh positions (N, 3); 0 without lip contact surfaces."""
        if self.lip_nodes is None:
            return 0.0
        depth, *_, facing, _ = self._lip_geometry(np.asarray(volume_positions, np.float64))
        beyond = np.where(facing, depth - self.lip_rest_depth, np.inf)
        return float(max(-beyond.min(), 0.0))

    def _lip_rows(self, positions: np.ndarray, near_cm: float = 0.0) -> int:
        """Rows for lip nodes inside the other lip (or within ``near_cm`` of it) at
        ``positions`` (N, 3): a node is inside when it projects onto one of its candidate
        triangles (from the rest shape) and lies deeper behind the other lip's surface
        there than at rest (by less than ``LIP_DEPTH_CM``). One row per node and triangle
        (``key`` −1 − (node · T + triangle)), for the nearest such triangle: the node
        against its projection's point b of the triangle (weights (1, −b)), so the row
        moves with the other lip, no deeper than at rest (``rest_gap``); its plane follows
        the iterate (``_lip_planes``). Returns how many rows are new."""
        depth, _, _, facing, weights = self._lip_geometry(positions)
        hit = facing & (depth < self.lip_rest_depth + near_cm)
        q = np.flatnonzero(hit.any(axis=1))
        if not len(q):
            return 0
        best = np.where(hit[q], np.abs(depth[q]), np.inf).argmin(axis=1)
        chosen = self.lip_candidates[q, best]
        nodes = np.c_[self.lip_nodes[q], self.lip_triangles[chosen]]
        movable = (self.free_slot[nodes] >= 0).any(axis=1)
        keys = -1 - (self.lip_nodes[q] * len(self.lip_triangles) + chosen)
        rest_gap = self.lip_rest_depth[q, best]
        before = len(self.rows.keys)
        fresh = self.rows.add(
            keys[movable], nodes[movable], np.c_[np.ones(len(q)), -weights[q, best]][movable],
            np.full(movable.sum(), -1), rest_gap[movable],
        )  # fmt: skip
        self._lip_planes(positions, np.arange(len(self.rows.keys)) >= before)
        return fresh

    def _lip_planes(self, positions: np.ndarray, lip: np.ndarray) -> None:
        """Planes of the lip rows ``lip`` (bool over rows) at ``positions`` (N, 3): the
        other lip's smooth normal (its vertex normals interpolated) at the row's point of
        the triangle; the row reads nᵀ(x_node − x_b) ≥ rest_gap (no margin: closed lips
        touch). Taken at every iterate (``_update_planes``)."""
        rows = self.rows
        normals, offsets = rows.normals, rows.offsets
        index = np.flatnonzero(lip)
        if not len(index):
            return
        vertex_normals = self._vertex_normals(positions)
        smooth = -np.einsum("pk,pkd->pd", rows.weights[index, 1:],
                            vertex_normals[rows.nodes[index, 1:]])  # fmt: skip
        normals[index] = smooth / np.maximum(np.linalg.norm(smooth, axis=1, keepdims=True), 1e-12)
        offsets[index] = rows.rest_gap[index] - self.margin

    def _update_planes(self, positions: np.ndarray) -> None:
        """The rows' planes at ``positions`` (N, 3) into ``rows.normals`` / ``offsets``: a
        sphere's tangent plane at the skin point's direction (outside the sphere), a
        plane collider itself, the other lip's smooth tangent plane (``_lip_planes``)."""
        rows = self.rows
        normals, offsets = rows.normals, rows.offsets
        collider = rows.collider
        sphere_count = len(self.sphere_radii)
        sphere = (collider >= 0) & (collider < sphere_count)
        if sphere.any():
            where = np.einsum("pk,pkd->pd", rows.weights[sphere], positions[rows.nodes[sphere]])
            centres = self.sphere_centres[collider[sphere]]
            direction = where - centres
            direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
            normals[sphere] = direction
            offsets[sphere] = np.einsum("pd,pd->p", direction, centres)
            offsets[sphere] += self.sphere_radii[collider[sphere]]
        plane = collider >= sphere_count
        index = collider[plane] - sphere_count
        normals[plane] = self.plane_normal_values[index]
        offsets[plane] = np.einsum(
            "pd,pd->p", self.plane_normal_values[index], self.plane_point_values[index]
        )
        self._lip_planes(positions, collider < 0)

    def _basis(self, factor) -> tuple[np.ndarray, np.ndarray]:
        """(Z = K⁻¹B (n, m), BᵀZ (m, m)) for the frame's rows, extended for new rows only:
        each new row costs one solve."""
        rows = self.rows
        response, coupling = rows.basis if rows.basis is not None else (None, None)
        done = 0 if response is None else response.shape[1]
        if done == len(rows.keys):
            return response, coupling
        slots = self.free_slot[rows.nodes]
        weights = np.where(slots >= 0, rows.weights, 0.0)
        slots = np.maximum(slots, 0)
        new = np.arange(done, len(rows.keys))
        columns = np.zeros((len(self.free_nodes), len(new)))
        np.add.at(columns, (slots[new].ravel(), np.repeat(np.arange(len(new)), 4)),
                  weights[new].ravel())  # fmt: skip
        fresh = np.asarray(factor.solve_many(columns))

        def project(row_index, z):  # Bᵀ z restricted to some rows: (rows, columns of z)
            return np.einsum("pk,pkq->pq", weights[row_index], z[slots[row_index]])

        corner = project(new, fresh)
        if response is None:
            response, coupling = fresh, corner
        else:
            side = project(np.arange(done), fresh)  # (done, new); K symmetric: BnᵀZo = sideᵀ
            coupling = np.block([[coupling, side], [side.T, corner]])
            response = np.concatenate([response, fresh], axis=1)
        rows.basis = (response, coupling)
        return response, coupling

    def hold(self, positions: np.ndarray, point: np.ndarray) -> np.ndarray:
        """``point`` (n, 3) free positions moved onto the rows' planes (the nearest such
        point in the global matrix's norm); ``point`` itself when it satisfies them.
        ``positions`` is the frame's buffer (its free part is overwritten)."""
        rows = self.rows
        if rows.basis is None or len(rows.basis[1]) != len(rows.keys):
            return point
        response, coupling = rows.basis
        positions[self.free_nodes] = point
        reach = np.einsum("pk,pkd->pd", rows.weights, positions[rows.nodes])
        gaps = np.einsum("pd,pd->p", rows.normals, reach) - rows.offsets - self.margin
        if gaps.min(initial=0.0) >= 0.0:
            return point
        normals = rows.normals
        forces = solve_lcp(coupling * (normals @ normals.T), gaps, rows.forces)
        return point + response @ (forces[:, None] * normals)

    def project(self, factor, positions, current, free_target, upload):
        """The global step under the contacts: the minimiser of the frame's quadratic with
        every skin point outside the colliders and (HR) no lip node inside the other lip,
        frictionless and exact along the normals.

        ``positions`` (N, 3) is the frame's buffer (prescribed nodes set), ``free_target``
        (n, 3) the unconstrained minimiser, ``current`` (n, 3) the iterate it came from,
        ``upload(positions)`` copies positions to the Warp array detection reads. Each row
        is linearised at the current positions (a collider's tangent plane, which for a
        sphere lies outside it; the other lip's smooth tangent plane). With Z = K⁻¹B (B:
        the rows' node weights on the free nodes, one column per row) the contact forces
        λ ≥ 0 solve the small complementarity problem W λ + gap(x̃) ≥ 0 ⟂ λ,
        W = (BᵀZ) ∘ (N Nᵀ), and x = x̃ + Z (λ ⊙ N). Points that a correction pushes into
        contact join the rows and the step is redone. The rows and their Z depend on the
        factor, fixed in a frame."""
        free = self.free_nodes
        solution, rows = free_target, self.rows
        for attempt in range(CONTACT_ROUNDS):
            positions[free] = solution
            new = 0
            if self.colliding:
                upload(positions)
                new += self._collider_rows()
            if self.lip_nodes is not None:
                new += self._lip_rows(positions)
            if (attempt > 0 and not new) or not len(rows.keys):
                break
            response, coupling = self._basis(factor)
            positions[free] = current
            self._update_planes(positions)
            normals, offsets = rows.normals, rows.offsets
            positions[free] = free_target
            reach = np.einsum("pk,pkd->pd", rows.weights, positions[rows.nodes])
            gaps = np.einsum("pd,pd->p", normals, reach) - offsets - self.margin
            forces = solve_lcp(coupling * (normals @ normals.T), gaps, rows.forces)
            rows.forces = forces
            solution = free_target + response @ (forces[:, None] * normals)
        return solution


__all__ = ["Contacts", "ContactRows", "MAX_CONTACT_ROWS", "solve_lcp"]
