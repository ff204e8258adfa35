"""Contact for the simulator: sphere and plane colliders on the embedded skin, and
lip-to-lip contact on the HR mesh, as hard unilateral constraints that never refactor.

Each global step's unconstrained minimiser x̃ is corrected by contact forces that solve a
small complementarity problem on the simulator's factor (``Contacts.project``). Rows are
found by detection during the step and kept for the frame (``ContactRows``); their
responses K⁻¹B cost one solve per new row, so the number of rows a frame may hold is
bounded (``MAX_CONTACT_ROWS``): a collider that would press more of the face than that
(one enclosing the head, say) is refused with a clear error instead of a solve that grows
without bound.
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
    collider; a lip row (``triangle`` ≥ 0, ``key`` < 0: one per lip node and triangle) holds
    a lip node on the outer side of a triangle of the other lip, weights (1, −b) with b the
    barycentric coordinates of its projection, no deeper than at rest (``rest_gap`` ≤ 0:
    the closed lips touch at rest). Normals and offsets follow the current positions."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nodes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    collider: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    triangle: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rest_gap: np.ndarray = field(default_factory=lambda: np.zeros(0))
    forces: np.ndarray = field(default_factory=lambda: np.zeros(0))
    basis: tuple | None = None

    def add(self, keys, nodes, weights, collider, triangle, rest_gap=None) -> int:
        fresh = ~np.isin(keys, self.keys)
        rest_gap = np.zeros(len(keys)) if rest_gap is None else rest_gap
        self.rest_gap = np.r_[self.rest_gap, rest_gap[fresh]]
        self.forces = np.r_[self.forces, np.zeros(fresh.sum())]
        self.keys = np.r_[self.keys, keys[fresh]]
        self.nodes = np.r_[self.nodes, nodes[fresh]]
        self.weights = np.r_[self.weights, weights[fresh]]
        self.collider = np.r_[self.collider, collider[fresh]]
        self.triangle = np.r_[self.triangle, triangle[fresh]]
        return int(fresh.sum())


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
        """Lip contact surfaces and, per lip node, candidate triangles of the other lip
        (the nearest by rest centroid)."""
        from scipy.spatial import cKDTree

        from .hr_mesh import lip_contact_surfaces

        upper, lower = lip_contact_surfaces(mesh, lip_zone)
        if not len(upper) or not len(lower):
            return
        self.lip_triangles = np.r_[upper, lower].astype(np.int64)
        rest = self.rest_positions
        nodes, candidates = [], []
        for own, other, offset in ((lower, upper, 0), (upper, lower, len(upper))):
            k = min(LIP_CANDIDATES, len(other))
            own_nodes = np.unique(own)
            _, nearest = cKDTree(rest[other].mean(axis=1)).query(rest[own_nodes], k=k)
            nodes.append(own_nodes)
            candidates.append(nearest.reshape(len(own_nodes), k) + offset)
        k = min(c.shape[1] for c in candidates)
        self.lip_nodes = np.concatenate(nodes).astype(np.int64)
        self.lip_candidates = np.concatenate([c[:, :k] for c in candidates])
        self.lip_rest_depth = self._lip_geometry(rest)[0]

    @property
    def active(self) -> bool:
        """Whether this frame has anything to hold: colliders or lip contact."""
        return self.colliding or self.lip_nodes is not None

    def begin_frame(self, colliders) -> None:
        """The frame's colliders (validated Sphere/Plane), and no rows yet."""
        spheres = [c for c in colliders if isinstance(c, Sphere)]
        planes = [c for c in colliders if isinstance(c, Plane)]
        self.colliding = bool(colliders)
        self.rows = ContactRows()
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
            inside, self.embedding_nodes[inside], self.embedding_weights[inside],
            colliders, np.full(len(inside), -1),
        )  # fmt: skip

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

    def _lip_geometry(self, positions: np.ndarray):
        """Each lip node against its candidate triangles of the other lip (Q, k) at
        ``positions`` (N, 3): (signed depth along the triangle's outward normal, > 0 on the
        outer side; barycentric coordinates (Q, k, 3) of its projection; whether the node
        projects onto the triangle within reach)."""
        triangles = self.lip_triangles[self.lip_candidates]  # (Q, k, 3)
        corners = positions[triangles]  # (Q, k, 3, 3)
        normals = np.cross(corners[..., 1, :] - corners[..., 0, :],
                           corners[..., 2, :] - corners[..., 0, :])  # fmt: skip
        normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
        point = positions[self.lip_nodes][:, None, :]
        depth = np.einsum("qkd,qkd->qk", point - corners[..., 0, :], normals)
        bary = barycentric_on_triangles(point - depth[..., None] * normals, corners)
        facing = (bary.min(axis=-1) > -LIP_BARY_SLACK) & (depth > -LIP_DEPTH_CM)
        return depth, bary, facing

    def lip_penetration_cm(self, volume_positions: np.ndarray) -> float:
        """How far (cm) the deepest lip node lies inside the other lip beyond where it lies
        at rest, for mesh positions (N, 3); 0 without lip contact surfaces."""
        if self.lip_nodes is None:
            return 0.0
        depth, _, facing = self._lip_geometry(np.asarray(volume_positions, np.float64))
        beyond = np.where(facing, depth - np.minimum(self.lip_rest_depth, 0.0), np.inf)
        return float(max(-beyond.min(), 0.0))

    def _lip_rows(self, positions: np.ndarray) -> int:
        """Rows for lip nodes inside the other lip, at ``positions`` (N, 3): each lip node
        against the nearest facing triangles of the other lip (candidates from the rest
        shape), inside when it projects onto one and lies deeper behind it than at rest (by
        less than ``LIP_DEPTH_CM``). Returns how many rows are new."""
        depth, bary, facing = self._lip_geometry(positions)
        hit = facing & (depth < np.minimum(self.lip_rest_depth, 0.0))
        node_hit = hit.any(axis=1)
        if not node_hit.any():
            return 0
        best = np.argmax(np.where(hit, -np.abs(depth), -np.inf), axis=1)[node_hit]
        rows = np.flatnonzero(node_hit)
        chosen = self.lip_candidates[rows, best]
        b = np.clip(bary[rows, best], 0.0, None)
        b /= b.sum(axis=1, keepdims=True)
        nodes = np.c_[self.lip_nodes[rows], self.lip_triangles[chosen]]
        weights = np.c_[np.ones(len(rows)), -b]
        movable = (self.free_slot[nodes] >= 0).any(axis=1)
        keys = -1 - (self.lip_nodes[rows] * len(self.lip_triangles) + chosen)
        rest = self.rest_positions[nodes]  # (r, 4, 3)
        normal = np.cross(rest[:, 2] - rest[:, 1], rest[:, 3] - rest[:, 1])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        rest_gap = np.minimum(np.einsum("pd,pkd,pk->p", normal, rest, weights), 0.0)
        return self.rows.add(
            keys[movable], nodes[movable], weights[movable],
            np.full(movable.sum(), -1), chosen[movable], rest_gap[movable],
        )  # fmt: skip

    # --- the constrained global step ---------------------------------------------------------

    def _planes(self, positions: np.ndarray):
        """(normals (m, 3), offsets (m,)) of every row at ``positions`` (N, 3): the row
        reads Σ_k w_k nᵀx_k ≥ offset + margin."""
        rows = self.rows
        where = np.einsum("pk,pkd->pd", rows.weights, positions[rows.nodes])
        normals = np.zeros_like(where)
        offsets = np.zeros(len(where))
        collider = rows.collider
        sphere_count = len(self.sphere_radii)
        sphere = (collider >= 0) & (collider < sphere_count)
        centres = self.sphere_centres[collider[sphere]]
        direction = where[sphere] - centres
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
        lip = rows.triangle >= 0
        if lip.any():
            corners = positions[self.lip_triangles[rows.triangle[lip]]]
            normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            normals[lip] = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
            # lips closed at rest touch: no margin between them, and no more than at rest
            offsets[lip] = rows.rest_gap[lip] - self.margin
        return normals, offsets

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

    def project(self, factor, positions, current, free_target, upload):
        """The global step under the contacts: the minimiser of the frame's quadratic with
        every skin point outside the colliders and (HR) no lip node inside the other lip,
        frictionless and exact along the normals.

        ``positions`` (N, 3) is the frame's buffer (prescribed nodes set), ``free_target``
        (n, 3) the unconstrained minimiser, ``current`` (n, 3) the iterate it came from,
        ``upload(positions)`` copies positions to the Warp array detection reads. Each row
        is linearised at the current positions (a collider's tangent plane, which for a
        sphere lies outside it; a lip triangle's plane). With Z = K⁻¹B (B: the rows' node
        weights on the free nodes, one column per row) the contact forces λ ≥ 0 solve the
        small complementarity problem W λ + gap(x̃) ≥ 0 ⟂ λ, W = (BᵀZ) ∘ (N Nᵀ), and
        x = x̃ + Z (λ ⊙ N). Points that a correction pushes into contact join the rows and
        the step is redone. The rows and their Z depend on the factor, fixed in a frame."""
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
            normals, offsets = self._planes(positions)
            positions[free] = free_target
            reach = np.einsum("pk,pkd->pd", rows.weights, positions[rows.nodes])
            gaps = np.einsum("pd,pd->p", normals, reach) - offsets - self.margin
            forces = solve_lcp(coupling * (normals @ normals.T), gaps, rows.forces)
            rows.forces = forces
            solution = free_target + response @ (forces[:, None] * normals)
        return solution


__all__ = ["Contacts", "ContactRows", "MAX_CONTACT_ROWS", "solve_lcp"]
