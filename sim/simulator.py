"""The face simulator: projective dynamics of the shape-targeting energy on a rig's mesh.

Energy (DESIGN.md "Physics"; kernels in ``solver_kernels``): per element
vol · (μ_e ‖F − R·A‖² + κ ‖F − P(F)‖²), skull nodes prescribed by the head transform and
jaw nodes by head ∘ jaw, plus optional inertia (backward Euler), gravity and point springs.
Each iteration is a local step (Warp kernels: the targets of every element and their
right-hand side Gᵀ·target) and a global step: a solve with three right-hand sides by a
sparse factor of K = Σ 2 vol (μ_e + κ) GᵀG (+ M'/h²) over the free nodes, which depends on
neither the activations nor the jaw pose, so it is factored once per simulator. Point
springs add k·ββᵀ to it (one more factor per set of springs, cached). Sphere and plane
colliders (on the skin) and lip-to-lip contact (on the HR mesh) are hard unilateral
constraints that never refactor (``contacts``); the forehead's sliding bone nodes are held
on their bone planes exactly in every global step (``sliding.Glide``). Anderson acceleration
with an energy
safeguard speeds up the fixed-point iteration; the frame is warm-started from the last
solution carried along the head motion and extrapolated linearly. What carries from one
frame to the next is one value, ``SimulatorState``; the skin is computed by the skin
stage (``skin_stage``), not here.

Residual: the largest node displacement of the last plain (unaccelerated) iteration,
max_i ‖G(x)_i − x_i‖, divided by the mean rest edge length (dimensionless). A frame stops
when it drops below ``tolerance`` and returns that last plain iterate G(x).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import warp as wp

from . import solver_kernels as kernels
from .contacts import Contacts
from .controls import Controls, PointSpring, validate_controls
from .errors import ControlError
from .factor import FactorCache, single_threaded_blas
from .parallel import SplitLaunch
from .rig import Rig
from .simmesh import FREE, JAW, SKULL
from .sliding import Glide, sliding_nodes, tether_stiffness
from .tetmesh import unique_edges
from .tolerances import PLAYBACK_TOLERANCE, TRAINING_TOLERANCE

ACCELERATIONS = ("none", "anderson")
POLARS = ("iterative", "svd")
STAGES = ("setup", "local", "rhs", "solve", "contacts")


@dataclass(frozen=True)
class Material:
    """Tissue parameters (cm, g, s). ``shear_modulus`` μ of passive flesh in Ba
    (dyn/cm², 3e4 Ba = 3 kPa); muscle elements are ``muscle_stiffness_ratio`` times
    stiffer at full weight; the volume term has κ = ``volume_stiffness_ratio`` times the
    element's own shear stiffness (muscle is as incompressible as flesh);
    ``density`` in g/cm³; mass-proportional ``damping`` in 1/s (dynamics only);
    colliders keep the skin ``contact_margin_cm`` outside. (The rig keeps a soft band
    between skull and jaw, so no element is driven by both bones.) ``forehead_sliding``
    lets the forehead's bone nodes glide along the bone, held exactly on its tangent planes
    (``sim/sliding.py``); False keeps every bone node fixed.
    ``passive_muscle_ratio``: a relaxed muscle is that many times stiffer than flesh and
    stiffens with its activation up to ``muscle_stiffness_ratio`` (relaxed muscle is soft,
    an active one is what pulls); the global matrix then follows the activations: it is
    factored again when an activation moved more than ``refactor_activation_change`` since
    the factor in use, and solved by conjugate gradients preconditioned with that factor in
    between. None: every muscle at ``muscle_stiffness_ratio`` whatever its activation (the
    matrix is factored once)."""

    shear_modulus: float = 3.0e4
    muscle_stiffness_ratio: float = 40.0
    volume_stiffness_ratio: float = 20.0
    density: float = 1.06
    damping: float = 5.0
    contact_margin_cm: float = 2.0e-3
    forehead_sliding: bool = True
    passive_muscle_ratio: float | None = 2.0
    refactor_activation_change: float = 0.1


@dataclass
class StepResult:
    """One simulated frame.

    ``volume_positions`` (N, 3) float32 cm of the mesh nodes (a copy); ``head_transform``
    and ``jaw_transform`` (4, 4) the world transforms of skull and jaw (the jaw's includes
    the head's), as the skin stage takes them; ``residual`` of the last iteration (module
    docstring) after ``iterations`` local/global iterations; ``energy_history`` the total
    energy (erg) of each accepted iterate, in order; ``warnings`` of the controls;
    ``seconds`` per stage (STAGES); ``max_penetration_cm`` of the skin in any collider;
    ``lip_penetration_cm`` of a lip into the other beyond rest (with lip contact);
    ``sliding_gap_cm`` the largest distance of a sliding bone node from its plane;
    ``activations`` (M,) float32 the frame's muscle activations in the rig's order."""

    volume_positions: np.ndarray
    residual: float
    iterations: int
    energy_history: list[float]
    warnings: list[str]
    head_transform: np.ndarray
    jaw_transform: np.ndarray
    converged: bool
    factorizations: int = 0
    max_penetration_cm: float = 0.0
    lip_penetration_cm: float = 0.0
    sliding_gap_cm: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    activations: np.ndarray | None = None


@dataclass
class SimulatorState:
    """Everything that carries over from one frame to the next: node ``positions`` (N, 3)
    float64 cm, free-node ``velocities`` (F, 3) float64 cm/s (dynamics), the ``head`` pose
    (4, 4), the last frame's positions carried to this pose for the linear warm-start
    prediction (``previous_positions``, None before the first step) and the elements'
    ``element_rotations`` (E, 4) float32 quaternions (the polar step's guesses), and with
    activation-dependent stiffness the activations (M,) float64 the factor in use was made
    for (``factored_activations``: the conjugate-gradient solves between refactorisations
    depend on it, so a resumed run must rebuild the same factor), and with a many-row glide
    the activations its reference coupling was built for (``glide_reference``, None when it
    has none) and whether it is due to be rebuilt (``glide_stale``): the glide's solves are
    preconditioned by it. ``Simulator.set_state`` of a ``state()`` continues bit for bit."""

    positions: np.ndarray
    velocities: np.ndarray
    head: np.ndarray
    element_rotations: np.ndarray
    previous_positions: np.ndarray | None = None
    factored_activations: np.ndarray | None = None
    glide_reference: np.ndarray | None = None
    glide_stale: bool = False

    def copy(self) -> SimulatorState:
        previous, factored = self.previous_positions, self.factored_activations
        reference = self.glide_reference
        return SimulatorState(
            self.positions.copy(),
            self.velocities.copy(),
            self.head.copy(),
            self.element_rotations.copy(),
            None if previous is None else previous.copy(),
            None if factored is None else factored.copy(),
            None if reference is None else reference.copy(),
            self.glide_stale,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for a checkpoint file (``previous_positions`` only when set)."""
        arrays = {
            "positions": self.positions,
            "velocities": self.velocities,
            "head": self.head,
            "element_rotations": self.element_rotations,
        }
        if self.previous_positions is not None:
            arrays["previous_positions"] = self.previous_positions
        if self.factored_activations is not None:
            arrays["factored_activations"] = self.factored_activations
        if self.glide_reference is not None:
            arrays["glide_reference"] = self.glide_reference
            arrays["glide_stale"] = np.array(self.glide_stale)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> SimulatorState:
        """The state ``to_arrays`` wrote."""
        previous = arrays.get("previous_positions")
        factored = arrays.get("factored_activations")
        reference = arrays.get("glide_reference")
        return cls(
            np.array(arrays["positions"], dtype=np.float64),
            np.array(arrays["velocities"], dtype=np.float64),
            np.array(arrays["head"], dtype=np.float64),
            np.array(arrays["element_rotations"], dtype=np.float32),
            None if previous is None else np.array(previous, dtype=np.float64),
            None if factored is None else np.array(factored, dtype=np.float64),
            None if reference is None else np.array(reference, dtype=np.float64),
            bool(arrays.get("glide_stale", False)),
        )


def _quaternion(rotation: np.ndarray) -> wp.quat:
    """Warp quaternion (x, y, z, w) of a 3×3 rotation matrix."""
    from scipy.spatial.transform import Rotation

    return wp.quat(*Rotation.from_matrix(rotation).as_quat().astype(np.float32))


@dataclass
class _Frame:
    """What one step keeps between iterations: transforms, the positions (N, 3) float64
    being solved and the fixed RHS (n, 3) of the free nodes (buffers the simulator
    allocates once), springs, inertia, gravity and the factor in use."""

    positions: np.ndarray
    rhs: np.ndarray
    head: np.ndarray = field(default_factory=lambda: np.eye(4))
    jaw: np.ndarray = field(default_factory=lambda: np.eye(4))
    previous_free: np.ndarray | None = None
    inertial_target: np.ndarray | None = None
    gravity: np.ndarray | None = None
    spring_key: tuple = ()
    springs: tuple = ()
    factor: object = None
    system: sp.spmatrix | None = None  # the frame's matrix when the factor is of another


class _Anderson:
    """Anderson acceleration of the fixed-point map x → G(x) (Peng et al. 2018): the next
    iterate is G(x_k) − ΔG θ with θ = argmin ‖f_k − ΔF θ‖, f = G(x) − x, over the last
    ``depth`` differences."""

    def __init__(self, depth: int):
        self.depth = depth
        self.reset()

    def reset(self) -> None:
        self._last_g = self._last_f = None
        self._dg: list[np.ndarray] = []
        self._df: list[np.ndarray] = []

    def extrapolate(self, x: np.ndarray, g: np.ndarray) -> np.ndarray | None:
        f = (g - x).ravel()
        g_flat = g.ravel()
        if self._last_f is not None:
            self._df.append(f - self._last_f)
            self._dg.append(g_flat - self._last_g)
            if len(self._df) > self.depth:
                self._df.pop(0)
                self._dg.pop(0)
        self._last_f, self._last_g = f, g_flat.copy()
        if not self._df:
            return None
        theta, *_ = np.linalg.lstsq(np.stack(self._df, axis=1), f, rcond=None)
        return (g_flat - np.stack(self._dg, axis=1) @ theta).reshape(g.shape)


CG_TOLERANCE = 1e-9  # relative residual of a preconditioned global solve
CG_MAX_ITERATIONS = 200
# The glide's planes hold to this fraction of the step tolerance (in mean edges), and
# within an iteration to GLIDE_FORCING of the last step (an inexact projection while far
# from the fixed point, exact as it converges: HR head_shake frames 3-10, inner solves per
# iteration 3.4 at a fixed 0.1 of the tolerance), never looser than GLIDE_LOOSEST edges.
GLIDE_GAP_FRACTION = 1e-2
GLIDE_FORCING = 0.1
GLIDE_LOOSEST = 1e-2


def _preconditioned_cg(matrix, rhs, start, precondition) -> np.ndarray:
    """Solve ``matrix`` x = ``rhs`` (n, 3), each column by conjugate gradients from
    ``start`` with ``precondition`` (a factor's solve) as the preconditioner."""
    x = np.array(start, dtype=np.float64)
    residual = rhs - matrix @ x
    target = CG_TOLERANCE * np.maximum(np.linalg.norm(rhs, axis=0), 1e-300)
    z = precondition(residual)
    direction = z.copy()
    rz = np.einsum("ij,ij->j", residual, z)
    for _ in range(CG_MAX_ITERATIONS):
        if (np.linalg.norm(residual, axis=0) <= target).all():
            break
        product = matrix @ direction
        curvature = np.einsum("ij,ij->j", direction, product)
        alpha = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
        x += alpha * direction
        residual -= alpha * product
        z = precondition(residual)
        rz_next = np.einsum("ij,ij->j", residual, z)
        beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
        direction = z + beta * direction
        rz = rz_next
    return x


def _projected_cg(matrix, rhs, start, precondition) -> np.ndarray:
    """Minimise ½xᵀ·matrix·x − rhsᵀx (n, 3) on the glide's planes by conjugate gradients
    from a ``start`` on them, ``precondition`` mapping a residual to the planes' directions
    (projected preconditioned CG; Gould, Hribar & Nocedal 2001). The planes couple the
    three columns, so they are one vector here."""
    x = np.array(start, dtype=np.float64)
    product = matrix @ x
    residual = rhs - product
    z = precondition(residual)
    scale = max(float(np.vdot(x, product)), 1e-300)  # the energy norm² of the start
    direction, rz = z.copy(), float(np.vdot(residual, z))
    for _ in range(CG_MAX_ITERATIONS):
        if rz <= CG_TOLERANCE**2 * scale:
            break
        product = matrix @ direction
        curvature = float(np.vdot(direction, product))
        if curvature <= 0.0:
            break
        alpha = rz / curvature
        x += alpha * direction
        residual -= alpha * product
        z = precondition(residual)
        rz_next = float(np.vdot(residual, z))
        direction = z + (rz_next / rz) * direction
        rz = rz_next
    return x


class _ActiveStiffness:
    """The activation-dependent part of the global matrix, Σ_e s_e · 2GᵀG over the muscle
    elements, assembled for element scales s (m,) straight into the free/free and
    free/prescribed sparsity patterns of the full matrix (no per-frame sparse algebra
    beyond one bincount)."""

    def __init__(self, full: sp.csr_matrix, unit_blocks, tets, free, prescribed, coverage):
        full = full.tocsr()
        full.sum_duplicates()
        full.sort_indices()
        n = full.shape[0]
        self.elements = np.flatnonzero(coverage > 0)
        corners = tets[self.elements].astype(np.int64)
        rows = np.repeat(corners, 4, axis=1).ravel()
        cols = np.tile(corners, (1, 4)).ravel()
        self.values = unit_blocks[self.elements].reshape(len(self.elements), 16)
        row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(full.indptr))
        self.position = np.searchsorted(row_of * n + full.indices, rows * n + cols)
        self.nnz = full.nnz
        index = sp.csr_matrix(
            (np.arange(1, full.nnz + 1, dtype=np.float64), full.indices, full.indptr), full.shape
        )
        self._parts = []
        for block in (index[free][:, free].tocsr(), index[free][:, prescribed].tocsr()):
            self._parts.append(
                (block.indices, block.indptr, block.data.astype(np.int64) - 1, block.shape)
            )

    def matrices(self, scale: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(free/free, free/prescribed) of Σ_e scale_e · 2GᵀG."""
        data = np.bincount(self.position, (self.values * scale[:, None]).ravel(), self.nnz)
        return tuple(
            sp.csr_matrix((data[source], indices, indptr), shape)
            for indices, indptr, source, shape in self._parts
        )


class Simulator:
    """Quasi-static or dynamic simulation of one rig at one resolution ("lr" or "hr").

    ``step(controls)`` advances one frame, warm-started from the last (carried along the
    head motion and extrapolated linearly), and returns a StepResult; ``reset()`` goes back
    to rest. Arrays are allocated once here; the kernels run on ``device`` ("cpu" or
    "cuda:N"), the sparse factor and its solves on the host. ``polar`` "iterative" refines
    each element's rotation from the last iteration (Newton); "svd" uses wp.svd3 (the
    reference, slower on the CPU). ``backend`` picks the factorisation (module docstring).
    ``lip_contact`` keeps the lips from passing into each other (default: on for "hr").
    Elements whose four nodes are all prescribed are left out: they cannot move.
    """

    def __init__(
        self,
        rig: Rig,
        resolution: str = "lr",
        device: str = "cpu",
        dynamics: bool = False,
        time_step: float = 1.0 / 24.0,
        tolerance: float = PLAYBACK_TOLERANCE,
        max_iterations: int = 100,
        acceleration: str = "anderson",
        anderson_depth: int = 5,
        polar: str = "iterative",
        extrapolate: bool = True,
        lip_contact: bool | None = None,
        material: Material = Material(),  # noqa: B008
        backend: str = "auto",
    ):
        if resolution not in ("lr", "hr"):
            raise ValueError(f"resolution {resolution!r}: use 'lr' or 'hr'")
        if acceleration not in ACCELERATIONS:
            raise ValueError(f"acceleration {acceleration!r}: use one of {ACCELERATIONS}")
        if polar not in POLARS:
            raise ValueError(f"polar {polar!r}: use one of {POLARS}")
        mesh = rig.lr if resolution == "lr" else rig.hr
        muscles = rig.lr_muscles if resolution == "lr" else rig.hr_muscles
        embedding = rig.lr_skin if resolution == "lr" else rig.hr_skin
        if mesh is None or muscles is None or embedding is None:
            raise ValueError(f"The rig {rig.preset!r} has no {resolution.upper()} mesh.")
        self.rig, self.resolution, self.mesh = rig, resolution, mesh
        self.device = wp.get_device(device)
        self.dynamics, self.time_step = dynamics, float(time_step)
        self.tolerance, self.max_iterations = float(tolerance), int(max_iterations)
        self.acceleration, self.anderson_depth = acceleration, anderson_depth
        self.polar, self.extrapolate, self.material = polar, extrapolate, material
        self.backend = backend

        tissue_labels = mesh.node_labels
        self.rest_positions = mesh.rest_positions.astype(np.float64)
        self.node_count = len(self.rest_positions)
        self.sliding_nodes = np.zeros(0, dtype=np.int64)
        self.sliding_normals = np.zeros((0, 3))
        if material.forehead_sliding:
            self.sliding_nodes, self.sliding_normals = sliding_nodes(
                self.rest_positions, mesh.tets, tissue_labels, rig.anatomy.skin_positions
            )
        self.sliding_tethers = tether_stiffness(self.rest_positions[self.sliding_nodes])
        labels = tissue_labels.copy()
        labels[self.sliding_nodes] = FREE
        self.free_nodes = np.flatnonzero(labels == FREE)
        self.skull_nodes = np.flatnonzero(labels == SKULL)
        self.jaw_nodes = np.flatnonzero(labels == JAW)
        self.prescribed_nodes = np.flatnonzero(labels != FREE)
        self._free_slot = np.full(self.node_count, -1, dtype=np.int64)
        self._free_slot[self.free_nodes] = np.arange(len(self.free_nodes))
        self._sliding_slots = self._free_slot[self.sliding_nodes]
        # the flesh's elements only: a sliding node has no element inside the bone
        self.simulated_elements = np.flatnonzero((tissue_labels[mesh.tets] == FREE).any(axis=1))
        self.element_count = len(self.simulated_elements)
        tets = mesh.tets[self.simulated_elements].astype(np.int32)

        rest_inverse, shape_weights, volume_weights = self._build_material(tets, muscles)
        self.glide = None
        if len(self.sliding_nodes):
            self.glide = Glide(
                len(self.free_nodes), self._sliding_slots, self.sliding_normals,
                self.rest_positions[self.sliding_nodes],
                GLIDE_GAP_FRACTION * self.tolerance * self.mean_edge_cm,
                self._glide_reference_factor,
            )  # fmt: skip
        self._glide_reference = None  # the activations of the glide's reference
        self._build_global_matrix(tets, shape_weights + volume_weights, rest_inverse)
        self._allocate(tets, rest_inverse, shape_weights, volume_weights)
        lips = lip_contact or (lip_contact is None and resolution == "hr")
        self.contacts = Contacts(
            mesh, self.free_nodes, self._free_slot, embedding, self.vertex_positions,
            self.device, material.contact_margin_cm, rig.lip_zone if lips else None,
        )  # fmt: skip
        self.embedding = embedding
        self._rest_state = SimulatorState(
            self.rest_positions.copy(),
            np.zeros((len(self.free_nodes), 3)),
            np.eye(4),
            np.tile(np.array([0, 0, 0, 1], np.float32), (self.element_count, 1)),
            factored_activations=np.zeros(len(rig.muscle_names)),
        )
        free_count = len(self.free_nodes)
        self._frame = _Frame(np.zeros((self.node_count, 3)), np.zeros((free_count, 3)))
        # per-iteration buffers: the global RHS, three iterates (x, the plain step and the
        # fallback may all be alive at once) and a scratch for the residual
        self._rhs_free = np.zeros((free_count, 3))
        self._forces_free = np.zeros((free_count, 3), dtype=np.float32)
        self._iterates = [np.zeros((free_count, 3)) for _ in range(3)]
        self._scratch = np.zeros((free_count, 3))
        self.positions = self.rest_positions.copy()
        self.reset()

    # --- construction ------------------------------------------------------------------------

    def _build_material(self, tets: np.ndarray, muscles) -> tuple:
        """Rest inverses (E, 3, 3), and shape and volume weights vol·μ_e, vol·κ (E,) erg."""
        rest, material = self.rest_positions, self.material
        edges = np.stack([rest[tets[:, i]] - rest[tets[:, 0]] for i in (1, 2, 3)], axis=2)
        self.rest_volumes = np.linalg.det(edges) / 6.0
        simulated = np.zeros(len(self.mesh.tets), dtype=bool)
        simulated[self.simulated_elements] = True
        renumber = np.cumsum(simulated) - 1
        keep = simulated[muscles.element]
        self._entry_element = renumber[muscles.element[keep]]
        self._entry_muscle = muscles.muscle[keep].astype(np.int32)
        self._entry_weight = muscles.weight[keep].astype(np.float32)
        self._entry_fibre = muscles.fibre[keep].astype(np.float32)
        weight = np.minimum(np.bincount(self._entry_element, self._entry_weight, len(tets)), 1.0)
        self.muscle_coverage = weight  # (E,) the muscle-covered fraction of each element
        ratio = material.passive_muscle_ratio or material.muscle_stiffness_ratio
        shear = material.shear_modulus * (1.0 + (ratio - 1.0) * weight)
        shape_weights = self.rest_volumes * shear
        volume_weights = self.rest_volumes * shear * material.volume_stiffness_ratio
        self._passive_weights = (shape_weights.copy(), volume_weights.copy())
        edge_list = unique_edges(self.mesh.tets)
        self.mean_edge_cm = float(
            np.linalg.norm(rest[edge_list[:, 1]] - rest[edge_list[:, 0]], axis=1).mean()
        )
        return np.linalg.inv(edges), shape_weights, volume_weights

    def _build_global_matrix(self, tets, weights, rest_inverse) -> None:
        """K = Σ 2 w GᵀG split into free/free and free/prescribed blocks; masses; factor."""
        gradients = np.zeros((len(tets), 4, 3))
        gradients[:, 1:] = rest_inverse
        gradients[:, 0] = -rest_inverse.sum(axis=1)
        blocks = 2.0 * weights[:, None, None] * np.einsum("eid,ejd->eij", gradients, gradients)
        rows = np.repeat(tets, 4, axis=1).ravel()
        cols = np.tile(tets, (1, 4)).ravel()
        n = self.node_count
        stiffness = sp.csr_matrix((blocks.ravel(), (rows, cols)), shape=(n, n))
        masses = np.zeros(n)
        np.add.at(masses, tets.ravel(), np.repeat(self.material.density * self.rest_volumes / 4, 4))
        self.node_masses = masses
        free = self.free_nodes
        self._stiffness_ff = stiffness[free][:, free].tocsc()
        self._stiffness_fd = stiffness[free][:, self.prescribed_nodes].tocsr()
        self._active = None
        if self.material.passive_muscle_ratio is not None:
            unit_blocks = 2.0 * np.einsum("eid,ejd->eij", gradients, gradients)
            self._active = _ActiveStiffness(
                stiffness, unit_blocks, tets, free, self.prescribed_nodes, self.muscle_coverage
            )
        self._inertia = np.zeros(len(free))
        if self.dynamics:
            h = self.time_step
            self._inertia = (1.0 + h * self.material.damping) * masses[free] / h**2
        if len(self.sliding_nodes):  # the tethers near the glide's edge
            diagonal = np.zeros(len(free))
            diagonal[self._sliding_slots] = self.sliding_tethers
            self._stiffness_ff = (self._stiffness_ff + sp.diags(diagonal)).tocsc()
        # the part of the free/free matrix no control changes
        self._constant_ff = self._stiffness_ff + sp.diags(self._inertia)
        clock = time.perf_counter()
        self.factors = FactorCache(self._constant_ff, self.backend)
        self.backend = self.factors.backend
        self.factor_seconds = time.perf_counter() - clock
        self._factored_activations = np.zeros(len(self.rig.muscle_names))
        self._earlier_factorizations = 0
        self._factored_now = True

    def _allocate(self, tets, rest_inverse, shape_weights, volume_weights):
        """Every device array, once."""
        d, rig = self.device, self.rig
        order = np.argsort(self._entry_element, kind="stable")
        entry_start = np.searchsorted(self._entry_element[order], np.arange(len(tets) + 1))
        self.max_contraction = np.asarray(rig.max_contractions, dtype=np.float32)
        if len(self.max_contraction) != len(rig.muscle_names):
            raise ControlError(
                f"The rig {rig.preset!r} has {len(rig.muscle_names)} muscles but "
                f"{len(self.max_contraction)} maximum contractions; rebuild it "
                "(build-rig --rebuild)."
            )
        self.muscle_index = {name: i for i, name in enumerate(rig.muscle_names)}
        self._activations = np.zeros(len(rig.muscle_names), dtype=np.float32)

        def array(values, dtype):
            return wp.array(values, dtype=dtype, device=d)

        e, n = len(tets), self.node_count
        self.tet_indices = array(tets, wp.int32)
        self.rest_inverse = array(rest_inverse.astype(np.float32), wp.mat33)
        self.shape_weights = array(shape_weights.astype(np.float32), float)
        self.volume_weights = array(volume_weights.astype(np.float32), float)
        self.element_entry_start = array(entry_start.astype(np.int32), wp.int32)
        self.entry_muscle = array(self._entry_muscle[order], wp.int32)
        self.entry_weight = array(self._entry_weight[order], float)
        self.entry_fibre = array(self._entry_fibre[order], wp.vec3)
        self.muscle_activations = wp.zeros(len(rig.muscle_names), dtype=float, device=d)
        self.muscle_max_contraction = array(self.max_contraction, float)
        self.element_actuations = wp.zeros(e, dtype=wp.mat33, device=d)
        self.element_rotations = wp.zeros(e, dtype=wp.quat, device=d)
        self.element_targets = wp.zeros(e, dtype=wp.mat33, device=d)
        self.element_energies = wp.zeros(e, dtype=float, device=d)
        self.vertex_positions = array(self.rest_positions.astype(np.float32), wp.vec3)
        self.node_forces = wp.zeros(n, dtype=wp.vec3, device=d)
        self._host_positions = np.zeros((n, 3), dtype=np.float32)

        def local_step_arguments(a: int, b: int):
            return (
                [self.vertex_positions, self.tet_indices[a:b], self.rest_inverse[a:b],
                 self.element_actuations[a:b], self.shape_weights[a:b],
                 self.volume_weights[a:b], int(self.polar == "svd"), self.element_rotations[a:b]],
                [self.element_targets[a:b], self.element_energies[a:b]],
            )  # fmt: skip

        self._local_step = SplitLaunch(kernels.project_elements, e, local_step_arguments, d)

    # --- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to rest: positions, velocities, head pose and rotation guesses."""
        self.set_state(self._rest_state)

    def state(self) -> SimulatorState:
        """The state after the last step (a copy: the simulator goes on without it)."""
        return SimulatorState(
            self.positions.copy(),
            self.velocities.copy(),
            self._head.copy(),
            self.element_rotations.numpy().copy(),
            None if self._previous_positions is None else self._previous_positions.copy(),
            self._factored_activations.copy(),
            *self._glide_state(),
        )

    def _glide_state(self) -> tuple:
        glide = self.glide
        if glide is None or not glide.has_reference:
            return None, False
        return self._glide_reference.copy(), glide.stale

    def _glide_reference_factor(self):
        """The spring-free factor in use, as the glide's reference (recorded for the state)."""
        self._glide_reference = self._factored_activations.copy()
        return self.factors.get((), None)

    def set_state(self, state: SimulatorState) -> None:
        """Continue from a state of a simulator of the same rig and resolution."""
        if state.positions.shape != self.rest_positions.shape or state.element_rotations.shape != (
            self.element_count,
            4,
        ):
            raise ValueError(
                f"A state of {len(state.positions)} nodes does not fit this "
                f"{self.resolution.upper()} mesh of {self.node_count}."
            )
        state = state.copy()
        self.positions, self.velocities, self._head = state.positions, state.velocities, state.head
        self._previous_positions = state.previous_positions
        self.element_rotations.assign(state.element_rotations)
        factored = state.factored_activations
        if self._active is not None and factored is not None:
            if not np.array_equal(factored, self._factored_activations):
                self._refactor(factored)
        if self.glide is not None:
            reference = state.glide_reference
            if reference is not None and not self.glide.explicit:
                self._glide_reference = reference
                if self._active is not None and not np.array_equal(
                    reference, self._factored_activations
                ):
                    matrix = self._constant_ff + self._active_ff(reference)
                    reference = FactorCache(matrix, self.backend).get((), None)
                else:
                    reference = self.factors.get((), None)
            self.glide.reset(reference, state.glide_stale)

    @property
    def factorizations(self) -> int:
        """Factorisations made so far (the base matrix and each new set of springs)."""
        return self._earlier_factorizations + self.factors.factorizations

    # --- penalty terms -----------------------------------------------------------------------

    def _penalty_matrix(self, nodes: np.ndarray, weights: np.ndarray, stiffness: np.ndarray):
        """Σ_p k_p β_p β_pᵀ on the free nodes, for points with nodes and weights (P, 4)."""
        slots = self._free_slot[nodes]
        rows = np.repeat(slots, 4, axis=1).ravel()
        cols = np.tile(slots, (1, 4)).ravel()
        values = (stiffness[:, None, None] * weights[:, :, None] * weights[:, None, :]).ravel()
        keep = (rows >= 0) & (cols >= 0)
        n = len(self.free_nodes)
        return sp.csc_matrix((values[keep], (rows[keep], cols[keep])), shape=(n, n))

    def _penalty_rhs(self, nodes, weights, stiffness, targets, positions, out) -> None:
        """Add k_p β_pj (t_p − Σ_prescribed β x) to the RHS ``out`` of each free node j."""
        slots = self._free_slot[nodes]
        prescribed = np.where(slots < 0, weights, 0.0)
        pull = targets - np.einsum("pk,pkd->pd", prescribed, positions[nodes])
        contribution = (stiffness[:, None] * weights)[:, :, None] * pull[:, None, :]
        keep = slots >= 0
        np.add.at(out, slots[keep], contribution[keep])

    # --- controls → frame data ---------------------------------------------------------------

    def _resolve_springs(self, springs: tuple[PointSpring, ...], warnings: list[str]):
        """(key, nodes (S, 4), weights (S, 4), stiffness (S,), targets (S, 3)) or None."""
        if not springs:
            return None
        vertex_row = {int(v): i for i, v in enumerate(self.embedding.vertices)}
        rigid = set(self.rig.skull_vertices.tolist()) | set(self.rig.jaw_vertices.tolist())
        nodes, weights, targets, stiffness, kept = [], [], [], [], []
        for i, spring in enumerate(springs):
            if spring.kind == "node":
                if not 0 <= spring.index < self.node_count:
                    raise ControlError(
                        f"point_springs[{i}]: node {spring.index} is not a mesh node "
                        f"(0 to {self.node_count - 1})."
                    )
                nodes.append([spring.index] * 4)
                weights.append([1.0, 0.0, 0.0, 0.0])
            elif spring.index in vertex_row:
                row = vertex_row[spring.index]
                nodes.append(self.contacts.embedding_nodes[row])
                weights.append(self.contacts.embedding_weights[row])
            elif spring.index in rigid:
                warnings.append(f"point spring on rigid vertex {spring.index} has no effect")
                continue
            else:
                raise ControlError(
                    f"point_springs[{i}]: ICT vertex {spring.index} is not simulated; pull a "
                    "skin vertex (face, lips, eyelids) or give kind='node'."
                )
            targets.append(spring.target)
            stiffness.append(spring.stiffness)
            kept.append((spring.kind, spring.index, spring.stiffness))
        if not nodes:
            return None
        return (tuple(kept), np.array(nodes, np.int64), np.array(weights, np.float64),
                np.array(stiffness, np.float64), np.array(targets, np.float64))  # fmt: skip

    def _activation_vector(self, activations: dict[str, float]) -> np.ndarray:
        values = self._activations
        values[:] = 0.0
        for name, value in activations.items():
            values[self.muscle_index[name]] = value
        return values

    # --- kernels -----------------------------------------------------------------------------

    def _upload_positions(self, positions: np.ndarray) -> None:
        self._host_positions[:] = positions
        if self.device.is_cpu:
            np.copyto(self.vertex_positions.numpy(), self._host_positions)
        else:
            self.vertex_positions.assign(self._host_positions)

    def _project(self) -> float:
        """Local step at the uploaded positions; returns the elastic energy (erg)."""
        self._local_step()
        return float(self.element_energies.numpy().sum(dtype=np.float64))

    def _assemble(self) -> np.ndarray:
        """Gᵀ·targets per node (N, 3) from the last local step."""
        self.node_forces.zero_()
        wp.launch(
            kernels.assemble_rhs,
            dim=self.element_count,
            inputs=[self.tet_indices, self.rest_inverse, self.element_targets],
            outputs=[self.node_forces],
            device=self.device,
        )
        return self.node_forces.numpy()

    # --- one frame ---------------------------------------------------------------------------

    def _begin_frame(self, controls: Controls, warnings: list[str]) -> _Frame:
        """Actuations, prescribed nodes, warm start and the frame's fixed RHS terms."""
        h, free = self.time_step, self.free_nodes
        self.muscle_activations.assign(self._activation_vector(controls.activations))
        wp.launch(
            kernels.compute_actuations,
            dim=self.element_count,
            inputs=[self.element_entry_start, self.entry_muscle, self.entry_weight,
                    self.entry_fibre, self.muscle_activations, self.muscle_max_contraction],
            outputs=[self.element_actuations],
            device=self.device,
        )  # fmt: skip
        frame = self._frame
        head = controls.head_transform
        frame.head = head
        if self.glide is not None:
            self.glide.begin_frame(head)
        frame.jaw = head @ self.rig.anatomy.jaw_transform(controls.jaw)
        frame.previous_free = frame.inertial_target = frame.gravity = None
        positions = frame.positions
        if self.dynamics:
            positions[:] = self.positions
            frame.previous_free = self.positions[free].copy()
            damping = 1.0 + h * self.material.damping
            frame.inertial_target = frame.previous_free + h * self.velocities / damping
            positions[free] = frame.inertial_target
        else:  # carry the last solution along with the head: a rigid motion costs nothing
            moved = head @ np.linalg.inv(self._head)
            start = self.positions
            if self.extrapolate and self._previous_positions is not None:
                start = 2.0 * self.positions - self._previous_positions  # linear prediction
            np.matmul(start, moved[:3, :3].T, out=positions)
            positions += moved[:3, 3]
            if not np.allclose(moved[:3, :3], np.eye(3)):
                wp.launch(
                    kernels.rotate_rotations,
                    dim=self.element_count,
                    inputs=[_quaternion(moved[:3, :3])],
                    outputs=[self.element_rotations],
                    device=self.device,
                )
        rest, jaw = self.rest_positions, frame.jaw
        positions[self.skull_nodes] = rest[self.skull_nodes] @ head[:3, :3].T + head[:3, 3]
        positions[self.jaw_nodes] = rest[self.jaw_nodes] @ jaw[:3, :3].T + jaw[:3, 3]

        frame.rhs[:] = -(self._stiffness_fd @ positions[self.prescribed_nodes])
        active_ff = None
        if self._active is not None:
            active_ff = self._stiffen(frame, positions, bool(controls.colliders))
        if self.dynamics:
            frame.rhs += self._inertia[:, None] * frame.inertial_target
        if controls.gravity is not None:
            frame.gravity = np.asarray(controls.gravity, dtype=np.float64)
            frame.rhs += self.node_masses[free][:, None] * frame.gravity
        springs = self._resolve_springs(controls.point_springs, warnings)
        frame.spring_key, frame.springs, spring_matrix = (), (), None
        if springs is not None:
            frame.spring_key, *rest_of = springs
            frame.springs = tuple(rest_of)
            if frame.spring_key not in self.factors:
                spring_matrix = self._penalty_matrix(*frame.springs[:3])
            self._penalty_rhs(*frame.springs, positions, frame.rhs)
        frame.factor = self.factors.get(frame.spring_key, spring_matrix)
        frame.system = None
        if active_ff is not None and not self._factored_now:
            frame.system = self._constant_ff + active_ff
            if frame.springs:
                frame.system = frame.system + self._penalty_matrix(*frame.springs[:3])
        self.contacts.begin_frame(controls.colliders, positions)
        return frame

    def _stiffen(self, frame: _Frame, positions: np.ndarray, colliding: bool):
        """Activation-dependent stiffness for this frame's activations: the element weights
        of the local step, the prescribed nodes' RHS term and the free/free part of the
        matrix (returned); factors it again when an activation moved more than the
        material's ``refactor_activation_change`` since the factor in use, or at all
        under contact (``colliding``: this frame's colliders; the HR lips)."""
        material, active = self.material, self._active
        activations = self._activations.astype(np.float64)
        extra = self._active_scale(activations)
        shape, volume = self._passive_weights
        self.shape_weights.assign((shape + extra).astype(np.float32))
        self.volume_weights.assign(
            (volume + extra * material.volume_stiffness_ratio).astype(np.float32)
        )
        scale = (extra * (1.0 + material.volume_stiffness_ratio))[active.elements]
        active_ff, active_fd = active.matrices(scale)
        frame.rhs -= active_fd @ positions[self.prescribed_nodes]
        change = np.abs(activations - self._factored_activations).max(initial=0.0)
        # Contact responses K⁻¹B are solved with the factor: under contact (the HR lips,
        # colliders) it must be this frame's matrix, or the constrained step projects with
        # the wrong one (consecutive pressed-lip HR frames: residual 0.05-0.3 and 1.4 mm
        # lip penetration with the 0.1 threshold; 0.01-0.2 and <= 0.06 mm refactoring).
        contact = colliding or self.contacts.lip_nodes is not None  # this frame's, not the last
        threshold = 0.0 if contact else material.refactor_activation_change
        self._factored_now = change <= 0.0 or change > threshold
        if self._factored_now and change > 0.0:
            self._refactor(activations, active_ff)
        return active_ff

    def _active_scale(self, activations: np.ndarray) -> np.ndarray:
        """The muscle elements' extra stiffness (Ba·cm³) for activations (M,)."""
        material = self.material
        drive = np.bincount(
            self._entry_element,
            self._entry_weight * activations[self._entry_muscle],
            self.element_count,
        )
        return (
            material.shear_modulus
            * (material.muscle_stiffness_ratio - material.passive_muscle_ratio)
            * np.minimum(self.muscle_coverage, drive)
            * self.rest_volumes
        )

    def _active_ff(self, activations: np.ndarray):
        """The free/free part of the activation-dependent matrix for ``activations`` (M,)."""
        extra = self._active_scale(activations)
        scale = (extra * (1.0 + self.material.volume_stiffness_ratio))[self._active.elements]
        return self._active.matrices(scale)[0]

    def _refactor(self, activations: np.ndarray, active_ff=None) -> None:
        """Factor the global matrix for ``activations`` (M,) and make it the one in use."""
        if active_ff is None:
            active_ff = self._active_ff(activations)
        self._earlier_factorizations += self.factors.factorizations
        self.factors = FactorCache(self._constant_ff + active_ff, self.backend)
        self._factored_activations = np.array(activations, dtype=np.float64)

    def _global_solve(self, frame: _Frame, rhs, start, residual: float) -> np.ndarray:
        """The global step's solution (n, 3), on the glide's planes: the factor's, or
        conjugate gradients on the frame's matrix preconditioned by it (from ``start``, the
        current iterate). Far from the fixed point (the last ``residual``) the planes are
        held more loosely: a fraction of the last step, down to the glide's tolerance."""
        factor, glide = frame.factor, self.glide
        if frame.system is None:
            if glide is None:
                return factor.solve(rhs)
            loose = GLIDE_FORCING * min(residual, GLIDE_LOOSEST) * self.mean_edge_cm
            return glide.solve(factor, rhs, loose)
        if glide is None:
            return _preconditioned_cg(frame.system, rhs, start, factor.solve)
        start = glide.project(factor, start)
        return _projected_cg(frame.system, rhs, start, lambda r: glide.tangent(factor, r))

    def _extra_energy(self, frame: _Frame, positions: np.ndarray) -> float:
        """Inertia, gravity and spring energy (erg) at ``positions`` (N, 3)."""
        total, free = 0.0, self.free_nodes
        if frame.inertial_target is not None:
            gap = positions[free] - frame.inertial_target
            total += 0.5 * float(np.einsum("i,ij,ij->", self._inertia, gap, gap))
        if frame.gravity is not None:
            total -= float(self.node_masses[free] @ (positions[free] @ frame.gravity))
        if frame.springs:
            nodes, weights, stiffness, targets = frame.springs
            stretch = np.einsum("pk,pkd->pd", weights, positions[nodes]) - targets
            total += 0.5 * float(stiffness @ (stretch**2).sum(axis=1))
        return total

    def _evaluate(self, frame: _Frame, x_free: np.ndarray, seconds) -> tuple[np.ndarray, float]:
        """Local step at free positions (n, 3) → (global RHS (n, 3), total energy (erg))."""
        clock = time.perf_counter()
        frame.positions[self.free_nodes] = x_free
        self._upload_positions(frame.positions)
        energy = self._project()
        seconds["local"] += time.perf_counter() - clock
        clock = time.perf_counter()
        np.take(self._assemble(), self.free_nodes, axis=0, out=self._forces_free)
        rhs = np.add(self._forces_free, frame.rhs, out=self._rhs_free)
        energy += self._extra_energy(frame, frame.positions)
        if self.glide is not None:
            anchors, tethers = self.glide.anchors, self.sliding_tethers
            rhs[self._sliding_slots] += tethers[:, None] * anchors
            stretch = x_free[self._sliding_slots] - anchors
            energy += 0.5 * float(tethers @ np.einsum("sd,sd->s", stretch, stretch))
        seconds["rhs"] += time.perf_counter() - clock
        return rhs, energy

    def step(self, controls: Controls | None = None) -> StepResult:
        """Advance one frame under ``controls``, validated here."""
        controls, warnings = validate_controls(controls or Controls(), self.rig.muscle_names)
        return self.advance(controls, warnings)

    def advance(self, controls: Controls, warnings: list[str]) -> StepResult:
        """Advance one frame under controls that ``validate_controls`` returned, with its
        ``warnings`` (the playback pipeline validates once and calls this)."""
        with single_threaded_blas():
            return self._advance(controls, list(warnings))

    def _advance(self, controls: Controls, warnings: list[str]) -> StepResult:
        seconds = dict.fromkeys(STAGES, 0.0)
        clock = time.perf_counter()
        factorizations_before = self.factorizations
        frame = self._begin_frame(controls, warnings)
        seconds["setup"] += time.perf_counter() - clock

        accelerator = _Anderson(self.anderson_depth) if self.acceleration == "anderson" else None
        energies: list[float] = []
        x = self._iterates[0]
        np.take(frame.positions, self.free_nodes, axis=0, out=x)
        fallback = None  # the plain step from the last accepted iterate, while extrapolating
        residual, iterations, converged = np.inf, 0, False
        while iterations < self.max_iterations:
            iterations += 1
            rhs, energy = self._evaluate(frame, x, seconds)
            if fallback is not None and energy > energies[-1] + 1e-9 * abs(energies[-1]):
                x, fallback = fallback, None  # the extrapolation raised the energy: undo it
                accelerator.reset()
                continue
            energies.append(energy)
            clock = time.perf_counter()
            plain = next(b for b in self._iterates if b is not x and b is not fallback)
            np.copyto(plain, self._global_solve(frame, rhs, x, residual))
            seconds["solve"] += time.perf_counter() - clock
            if self.contacts.active:
                clock = time.perf_counter()
                plain = self.contacts.project(
                    frame.factor, frame.positions, x, plain, self._upload_positions
                )
                seconds["contacts"] += time.perf_counter() - clock
            step = np.subtract(plain, x, out=self._scratch)
            residual = float(np.sqrt(np.einsum("ij,ij->i", step, step).max()) / self.mean_edge_cm)
            if residual <= self.tolerance:
                x, converged = plain, True
                break
            extrapolated = None if accelerator is None else accelerator.extrapolate(x, plain)
            if extrapolated is not None and self.contacts.active:
                # an extrapolation into a lip or collider would look cheaper to the energy
                # safeguard than any admissible iterate: move it onto the contacts first
                extrapolated = self.contacts.hold(frame.positions, extrapolated)
            x, fallback = (plain, None) if extrapolated is None else (extrapolated, plain)
        if not converged and fallback is not None:
            x = fallback
        if self.glide is not None:
            self.glide.end_frame()

        penetration = self._store(frame, x)
        return StepResult(
            volume_positions=self.positions.astype(np.float32),
            residual=residual,
            iterations=iterations,
            energy_history=energies,
            warnings=warnings,
            head_transform=frame.head,
            jaw_transform=frame.jaw,
            converged=converged,
            factorizations=self.factorizations - factorizations_before,
            max_penetration_cm=penetration,
            lip_penetration_cm=self.contacts.lip_penetration_cm(self.positions),
            sliding_gap_cm=self._largest_sliding_gap(),
            seconds=seconds,
            activations=self._activations.copy(),
        )

    def _largest_sliding_gap(self) -> float:
        if self.glide is None:
            return 0.0
        return float(np.abs(self.glide.gaps(self.positions[self.free_nodes])).max())

    def _store(self, frame: _Frame, x: np.ndarray) -> float:
        """Keep the frame's solution (free positions ``x`` (n, 3)) as the new state and
        upload it; returns the deepest skin penetration into a collider (cm)."""
        frame.positions[self.free_nodes] = x
        if self.dynamics:
            self.velocities = (x - frame.previous_free) / self.time_step
        moved = frame.head @ np.linalg.inv(self._head)  # the last solution in this head pose
        previous = self._previous_positions
        if previous is None or previous.shape != self.positions.shape:
            previous = np.empty_like(self.positions)
        np.matmul(self.positions, moved[:3, :3].T, out=previous)
        previous += moved[:3, 3]
        self._previous_positions = previous
        self.positions[:] = frame.positions
        self._head = frame.head
        self._upload_positions(self.positions)
        return self.contacts.skin_penetration_cm()


__all__ = ["Material", "Simulator", "SimulatorState", "StepResult", "PLAYBACK_TOLERANCE",
           "TRAINING_TOLERANCE"]  # fmt: skip
