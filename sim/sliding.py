"""Where the flesh glides over the bone: bone nodes that slide along the bone surface.

Under the forehead the frontalis and the galea glide over the skull on a loose areolar
layer, which is how a brow rises a centimetre; a lattice whose bone nodes are all fixed
glues every forehead element to the skull and the contraction cannot add up along the
muscle (measured at ``default``: brow raise 2.2 mm; with this band sliding, 5.1 mm). The
band ends below the frontalis origins, which stay attached (were they free, the muscle
would pull its own origin down as much as the brow up).

A sliding node is a bone node (skull-labelled, touching a tissue element) inside a band.
The simulator treats it as a free node held exactly on the bone's tangent plane at its
rest position, n·x = n·p, the plane moving with the head (``Glide``): each global step is
the minimiser of the frame's quadratic on those planes. (A penalty k/2 (n·(x − p))² in
the local step, the release-1 design, also holds the node's tangential position at the
last iterate with the isotropic k on the matrix diagonal, so a node that must glide creeps
F/k per iteration: HR frames under a head shake stalled at 2e-4 … 1.3e-3, always on a
creeping forehead node; issue 19, session 9.)

The plane's normal points from the bone to the nearest skin, smoothed over its neighbours:
the bone under the face is the skin offset by the tissue depth, so this is the bone
surface's own normal. The lattice's bone nodes only approximate that surface, and normals
from the mesh (the mean direction to a node's free neighbours) disagree with it by up to
166° at the glabella on the HR mesh, inverting 38 gliding elements under a full frontalis
(with skin normals: none).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial import cKDTree

from .simmesh import FREE, SKULL

# Head-frame bands (cm): the forehead between the brows (y ≈ 6) and the frontalis origins
# (y ≈ 10.5), in front of the temples.
FOREHEAD_BAND = {"y_cm": (5.0, 9.0), "z_min_cm": 4.0}
# The glide fades out toward the band's lower edge (the galea's attachment at the nasal root
# and the orbital rims): sliding nodes there are tied to their rest positions by a
# zero-length spring, full at the edge and none 0.5 cm above it. Without it, the elements
# spanning the edge (one sliding node, two fixed bone nodes and one free node) inverted
# under a head shake with the anger theme (HR default frames 10-23: 2-3 elements).
TETHER_DYN_PER_CM = 1.0e6
TETHER_FADE_Y_CM = (5.0, 5.5)
SKIN_NEIGHBOURS = 8  # skin vertices whose inverse-distance mean is a node's nearest skin
NORMAL_SMOOTHING_CM = 0.5  # normals averaged over the sliding nodes within this radius
# Up to this many sliding nodes the responses K⁻¹eⱼ are solved for every factor and the
# glide is one solve per global step (LR default: 111); beyond it (HR default: 1,680,
# 15 s of responses per factor) the multipliers are found by conjugate gradients,
# preconditioned by the rows' coupling from a reference factor.
EXPLICIT_LIMIT = 400
# The reference is rebuilt from the factor in use when a frame's glide took more than this
# many inner iterations per global step (HR head_shake: 3-4 with the rest's reference under
# the anger theme's stiffened brow muscles, 1.3 with a fresh one; a rebuild costs about
# 40 steps' worth of solves).
REFRESH_ABOVE = 2.0
MAX_INNER = 200
RESPONSE_BLOCK = 128  # columns per block solve while building a reference


def sliding_nodes(
    rest_positions: np.ndarray, tets: np.ndarray, node_labels: np.ndarray, skin: np.ndarray
):
    """Sliding nodes (S,) int64 and the unit normals (S, 3) float64 of their bone planes,
    pointing into the flesh toward the skin ``skin`` (K, 3) cm."""
    free = node_labels == FREE
    tissue = tets[free[tets].any(axis=1)]
    touching = np.zeros(len(node_labels), dtype=bool)
    touching[tissue.ravel()] = True
    low, high = FOREHEAD_BAND["y_cm"]
    y, z = rest_positions[:, 1], rest_positions[:, 2]
    in_band = (y > low) & (y < high) & (z > FOREHEAD_BAND["z_min_cm"])
    nodes = np.flatnonzero((node_labels == SKULL) & touching & in_band)
    points = rest_positions[nodes]
    distance, nearest = cKDTree(skin).query(points, k=SKIN_NEIGHBOURS)
    weights = 1.0 / (distance + 1e-3)
    nearest_skin = np.einsum("sk,skd->sd", weights, skin[nearest]) / weights.sum(axis=1)[:, None]
    towards = nearest_skin - points
    towards /= np.linalg.norm(towards, axis=1)[:, None]
    normals = np.zeros_like(towards)
    for i, group in enumerate(cKDTree(points).query_ball_point(points, NORMAL_SMOOTHING_CM)):
        normals[i] = towards[group].sum(axis=0)
    return nodes, normals / np.linalg.norm(normals, axis=1)[:, None]


def tether_stiffness(rest_positions: np.ndarray) -> np.ndarray:
    """The zero-length springs (S,) dyn/cm tying sliding nodes at rest positions (S, 3) cm
    near the band's lower edge to where they lie at rest (0 elsewhere)."""
    low, high = TETHER_FADE_Y_CM
    fade = np.clip((high - rest_positions[:, 1]) / (high - low), 0.0, 1.0)
    return TETHER_DYN_PER_CM * fade


class Glide:
    """The sliding nodes' planes as exact constraints of the global step.

    With A the global matrix on the free nodes (one scalar matrix for the three
    coordinates) and N the rows n_jᵀ at the sliding nodes' slots, the global step's
    solution on the planes is x = A⁻¹(b − Nᵀμ) with the multipliers μ (S,) solving
    G μ = N A⁻¹b − d, G = N A⁻¹ Nᵀ = (A⁻¹)_SS ∘ (n_i·n_j), which a head rotation leaves
    unchanged. Few rows: A⁻¹ at the slots is solved for each factor and G factored, so a
    step costs the one solve it cost without the glide. Many rows: conjugate gradients on
    G μ = gaps, each product one solve, preconditioned by G from a reference factor and
    warm-started from the last step's μ (which barely moves between iterations), so a
    step costs 1 + (inner iterations) solves. Every returned solution lies on the planes to
    ``gap_tolerance_cm``. ``reference_factor()`` gives the factor a reference is built from
    when one is needed (the simulator's, which records what it was made for: a resumed run
    must precondition alike to continue bit for bit); the multipliers start from zero each
    frame for the same reason."""

    def __init__(
        self, free_count: int, slots, rest_normals, rest_anchors, gap_tolerance_cm,
        reference_factor,
    ):  # fmt: skip
        self.free_count, self.slots = int(free_count), np.asarray(slots, dtype=np.int64)
        self.rest_normals = np.asarray(rest_normals, dtype=np.float64)
        self.rest_anchors = np.asarray(rest_anchors, dtype=np.float64)
        self.gap_tolerance_cm = float(gap_tolerance_cm)
        self.explicit = len(slots) <= EXPLICIT_LIMIT
        self.reference_factor = reference_factor
        self.normals, self.anchors = self.rest_normals, self.rest_anchors
        self.offsets = self._offsets(self.anchors)
        self.multipliers = np.zeros(len(slots))
        self.inner_iterations = 0  # over the glide's life: the cost of the many-row case
        self.references = 0
        self._frame_counts = [0, 0]  # this frame's (global steps, inner iterations)
        self._factor = None  # the factor the responses or the reference come from
        self._responses = None  # explicit: A⁻¹ at the slots' columns (n, S)
        self._coupling = None  # Cholesky of G (exact when explicit, else the reference's)
        self.stale = False  # the reference is rebuilt before the next solve

    def _offsets(self, anchors: np.ndarray) -> np.ndarray:
        return np.einsum("sd,sd->s", self.normals, anchors)

    def begin_frame(self, head: np.ndarray) -> None:
        """The planes in the frame's head pose (4, 4)."""
        self.multipliers[:] = 0.0
        self._frame_counts = [0, 0]
        rotation, offset = head[:3, :3], head[:3, 3]
        self.normals = self.rest_normals @ rotation.T
        self.anchors = self.rest_anchors @ rotation.T + offset
        self.offsets = self._offsets(self.anchors)

    def end_frame(self) -> None:
        """Mark the reference stale when this frame needed more than REFRESH_ABOVE inner
        iterations per step."""
        steps, inner = self._frame_counts
        if not self.explicit and inner > REFRESH_ABOVE * max(steps, 1):
            self.stale = True

    @property
    def has_reference(self) -> bool:
        return not self.explicit and self._coupling is not None

    def reset(self, reference=None, stale: bool = False) -> None:
        """Drop the reference, or build it from the factor ``reference`` (many rows)."""
        self._coupling, self._factor = None, None
        if reference is not None and not self.explicit:
            self._build(reference)
        self.stale = stale

    def gaps(self, x_free: np.ndarray) -> np.ndarray:
        """Signed distances (S,) cm of the sliding nodes from their planes."""
        return np.einsum("sd,sd->s", self.normals, x_free[self.slots]) - self.offsets

    def _prepare(self, factor) -> None:
        if self.explicit:
            if factor is not self._factor:
                self._build(factor)
        elif self._coupling is None or self.stale:
            self._build(self.reference_factor())

    def _build(self, factor) -> None:
        count, free_count = len(self.slots), self.free_count
        at_slots = np.zeros((count, count))
        columns = None
        if self.explicit:
            columns = np.zeros((free_count, count))
        for start in range(0, count, RESPONSE_BLOCK):
            block = np.arange(start, min(start + RESPONSE_BLOCK, count))
            units = np.zeros((free_count, len(block)))
            units[self.slots[block], np.arange(len(block))] = 1.0
            response = np.asarray(factor.solve_many(units))
            at_slots[:, block] = response[self.slots]
            if columns is not None:
                columns[:, block] = response
        coupling = 0.5 * (at_slots + at_slots.T) * (self.rest_normals @ self.rest_normals.T)
        self._coupling = cho_factor(coupling)
        self._responses, self._factor, self.stale = columns, factor, False
        self.references += 1

    def _response(self, solve, weights: np.ndarray) -> np.ndarray:
        """A⁻¹Nᵀw (n, 3) for row weights w (S,)."""
        if self.explicit:
            return self._responses @ (weights[:, None] * self.normals)
        field = np.zeros((self.free_count, 3))
        field[self.slots] = weights[:, None] * self.normals
        return solve(field)

    def solve(self, factor, rhs: np.ndarray, tolerance_cm: float | None = None) -> np.ndarray:
        """The minimiser (n, 3) of ½xᵀAx − rhsᵀx on the planes, A ``factor``'s matrix, to
        ``tolerance_cm`` (default: the glide's own; an iteration far from its fixed point
        may ask for less)."""
        solve = factor.solve
        tolerance = self.gap_tolerance_cm if tolerance_cm is None else tolerance_cm
        if self.explicit:  # exact in one step and no solve: no reason to hold loosely
            tolerance = self.gap_tolerance_cm
        self._prepare(factor)
        self._frame_counts[0] += 1
        load = rhs.copy()
        load[self.slots] -= self.multipliers[:, None] * self.normals
        x = np.array(solve(load))  # a factor's solve may return its own buffer
        x, change = self._correct(solve, x, self.gaps(x), max(tolerance, self.gap_tolerance_cm))
        self.multipliers += change
        return x

    def project(self, factor, x: np.ndarray) -> np.ndarray:
        """``x`` (n, 3) moved onto the planes, the nearest such point in A's norm."""
        self._prepare(factor)
        return self._correct(factor.solve, x.copy(), self.gaps(x), self.gap_tolerance_cm)[0]

    def tangent(self, factor, field: np.ndarray) -> np.ndarray:
        """A⁻¹ ``field`` (n, 3) restricted to the planes' directions (Nx = 0): the
        preconditioner of conjugate gradients that stay on the planes."""
        self._prepare(factor)
        x = np.array(factor.solve(field))
        gaps = np.einsum("sd,sd->s", self.normals, x[self.slots])
        tolerance = 1e-10 * max(float(np.abs(gaps).max(initial=0.0)), 1e-300)
        return self._correct(factor.solve, x, gaps, tolerance)[0]

    def _correct(self, solve, x, gaps, tolerance):
        """(x − A⁻¹Nᵀδ, δ) with G δ = gaps (S,) to ``tolerance`` cm: conjugate gradients
        preconditioned by the reference coupling (one step when it is exact)."""
        change = np.zeros(len(self.slots))
        residual = gaps.copy()
        if np.abs(residual).max(initial=0.0) <= tolerance:
            return x, change
        z = cho_solve(self._coupling, residual)
        direction, rz = z, float(residual @ z)
        iterations = 0
        while iterations < MAX_INNER:
            iterations += 1
            response = self._response(solve, direction)
            product = np.einsum("sd,sd->s", self.normals, response[self.slots])
            alpha = rz / float(direction @ product)
            change += alpha * direction
            x -= alpha * response
            residual -= alpha * product
            if np.abs(residual).max() <= tolerance:
                break
            z = cho_solve(self._coupling, residual)
            rz_next = float(residual @ z)
            direction = z + (rz_next / rz) * direction
            rz = rz_next
        self.inner_iterations += iterations
        self._frame_counts[1] += iterations
        return x, change


__all__ = ["FOREHEAD_BAND", "Glide", "sliding_nodes", "tether_stiffness"]
