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
constraints that never refactor: their forces solve a small complementarity problem on
the factor (``_project_contacts``). Anderson acceleration with an energy safeguard speeds
up the fixed-point iteration; the frame is warm-started from the last solution carried
along the head motion and extrapolated linearly.

Residual: the largest node displacement of the last plain (unaccelerated) iteration,
max_i ‖G(x)_i − x_i‖, divided by the mean rest edge length (dimensionless). A frame stops
when it drops below ``tolerance`` and returns that last plain iterate G(x).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import warp as wp

from . import solver_kernels as kernels
from .anatomy import apply_transform
from .controls import Controls, Plane, PointSpring, Sphere, validate_controls
from .errors import ControlError
from .rig import Rig
from .simmesh import FREE, JAW, SKULL
from .tetmesh import unique_edges

PLAYBACK_TOLERANCE = 2e-3  # live playback, warm-started (see benchmarks/bench_simulator.py)
TRAINING_TOLERANCE = 1e-4  # reference frames for the dataset
ACCELERATIONS = ("none", "anderson")
POLARS = ("iterative", "svd")
BACKENDS = ("auto", "splu", "cholespy")
CONTACT_ROUNDS = 8  # contact detections per global step
LIP_DEPTH_CM = 0.3  # a lip node this far behind a triangle of the other lip is not touching it
LIP_BARY_SLACK = 0.05  # tolerance of "projects onto the triangle" (barycentric)
LIP_CANDIDATES = 6  # triangles of the other lip tried per lip node
LCP_PASSES = 8  # growths of the contact problem's pushing rows
FACTOR_CACHE_SIZE = 4
STAGES = ("setup", "local", "rhs", "solve", "contacts", "skin")


@dataclass(frozen=True)
class Material:
    """Tissue parameters (cm, g, s). ``shear_modulus`` μ of passive flesh in Ba
    (dyn/cm², 3e4 Ba = 3 kPa); muscle elements are ``muscle_stiffness_ratio`` times
    stiffer at full weight; the volume term has κ = ``volume_stiffness_ratio`` times the
    element's own shear stiffness (muscle is as incompressible as flesh);
    ``density`` in g/cm³; mass-proportional ``damping`` in 1/s (dynamics only);
    colliders keep the skin ``contact_margin_cm`` outside. (The rig keeps a soft band
    between skull and jaw, so no element is driven by both bones.)"""

    shear_modulus: float = 3.0e4
    muscle_stiffness_ratio: float = 20.0
    volume_stiffness_ratio: float = 10.0
    density: float = 1.06
    damping: float = 5.0
    contact_margin_cm: float = 2.0e-3


@dataclass
class StepResult:
    """One simulated frame.

    ``skin_positions`` (P, 3) float32 cm, row i for ICT vertex
    ``Simulator.skin_vertex_indices[i]`` (embedded skin first, then the rigid skull and jaw
    vertices); ``volume_positions`` (N, 3) float32 cm of the mesh nodes; ``residual`` of
    the last iteration (module docstring) after ``iterations`` local/global iterations;
    ``energy_history`` the total energy (erg) of each accepted iterate, in order;
    ``seconds`` per stage (STAGES); ``max_penetration_cm`` of the skin in any collider;
    ``lip_penetration_cm`` of a lip into the other beyond rest (with lip contact)."""

    skin_positions: np.ndarray
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
    seconds: dict[str, float] = field(default_factory=dict)


class _Factor:
    """A sparse symmetric positive definite matrix (n, n) factored once: SuperLU
    (scipy, symmetric mode) or CHOLMOD through cholespy where it is installed."""

    def __init__(self, matrix: sp.spmatrix, backend: str):
        self.backend = backend
        if backend == "cholespy":
            from cholespy import CholeskySolverD, MatrixType

            coo = sp.coo_matrix(matrix)
            self._solver = CholeskySolverD(
                matrix.shape[0], coo.row.astype(np.int32), coo.col.astype(np.int32),
                coo.data.astype(np.float64), MatrixType.COO,
            )  # fmt: skip
            self._out = np.zeros((matrix.shape[0], 3))
        else:
            from scipy.sparse.linalg import splu

            self._solver = splu(
                sp.csc_matrix(matrix), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )  # fmt: skip

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """(n, 3) → (n, 3); the result may be an internal buffer: copy to keep it."""
        if self.backend == "cholespy":
            self._solver.solve(np.ascontiguousarray(rhs), self._out)
            return self._out
        return self._solver.solve(rhs)

    def solve_many(self, rhs: np.ndarray) -> np.ndarray:
        """(n, k) → (n, k) for any k."""
        if self.backend == "cholespy":
            out = np.zeros_like(rhs)
            self._solver.solve(np.ascontiguousarray(rhs), out)
            return out
        return self._solver.solve(np.asfortranarray(rhs))


@contextmanager
def _single_threaded_blas():
    """Run numpy's OpenBLAS on one thread inside the block: the step's dense algebra is
    small (Anderson's least squares, the contact problem), and on a busy machine a second
    BLAS thread spinning for a core makes a 100 × 100 Cholesky hundreds of times slower.
    Restores the previous thread count; does nothing where no OpenBLAS is found."""
    library = _openblas()
    if library is None:
        yield
        return
    get, set_ = library
    previous = get()
    set_(1)
    try:
        yield
    finally:
        set_(previous)


@lru_cache(maxsize=1)
def _openblas():
    import ctypes
    import glob
    import os

    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libopenblas*"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):
            get = getattr(library, f"openblas_get_num_threads{suffix}", None)
            set_ = getattr(library, f"openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return get, set_
    return None


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {BACKENDS}")
    if backend != "auto":
        return backend
    try:
        import cholespy  # noqa: F401
    except ImportError:
        return "splu"
    return "cholespy"


def _solve_lcp(coupling: np.ndarray, gaps: np.ndarray, guess: np.ndarray) -> np.ndarray:
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


def _barycentric_on_triangles(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
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


def _max_contractions(rig: Rig, face_model) -> np.ndarray:
    """Each rig muscle's max_contraction (M,) float32 from the muscle file."""
    from .muscles import load_muscle_definitions

    by_name = {d.name: d.max_contraction for d in load_muscle_definitions(face_model=face_model)}
    missing = [name for name in rig.muscle_names if name not in by_name]
    if missing:
        raise ControlError(
            f"The muscle file has no definition for {', '.join(missing)}; rebuild the rig."
        )
    return np.array([by_name[name] for name in rig.muscle_names], dtype=np.float32)


def _quaternion(rotation: np.ndarray) -> wp.quat:
    """Warp quaternion (x, y, z, w) of a 3×3 rotation matrix."""
    from scipy.spatial.transform import Rotation

    return wp.quat(*Rotation.from_matrix(rotation).as_quat().astype(np.float32))


@dataclass
class _ContactRows:
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


@dataclass
class _Frame:
    """What one step keeps between iterations: transforms, the positions (N, 3) float64
    being solved, the fixed RHS (n, 3) of the free nodes, springs, inertia, colliders and
    their contacts, and the factor in use."""

    head: np.ndarray
    jaw: np.ndarray
    positions: np.ndarray
    rhs: np.ndarray | None = None
    previous_free: np.ndarray | None = None
    inertial_target: np.ndarray | None = None
    gravity: np.ndarray | None = None
    spring_key: tuple = ()
    springs: tuple = ()
    factor: _Factor | None = None
    colliding: bool = False
    sphere_centres: np.ndarray | None = None
    sphere_radii: np.ndarray | None = None
    plane_points: np.ndarray | None = None
    plane_normals: np.ndarray | None = None
    contacts: _ContactRows = field(default_factory=lambda: _ContactRows())
    max_penetration: float = 0.0


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
        face_model=None,
    ):
        from .face_model import load_face_model

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
        self.backend = _resolve_backend(backend)
        self.face_model = face_model if face_model is not None else load_face_model()
        self.factorizations = 0

        labels = mesh.node_labels
        self.rest_positions = mesh.rest_positions.astype(np.float64)
        self.node_count = len(self.rest_positions)
        self.free_nodes = np.flatnonzero(labels == FREE)
        self.skull_nodes = np.flatnonzero(labels == SKULL)
        self.jaw_nodes = np.flatnonzero(labels == JAW)
        self.prescribed_nodes = np.flatnonzero(labels != FREE)
        self._free_slot = np.full(self.node_count, -1, dtype=np.int64)
        self._free_slot[self.free_nodes] = np.arange(len(self.free_nodes))
        self.simulated_elements = np.flatnonzero((labels[mesh.tets] == FREE).any(axis=1))
        self.element_count = len(self.simulated_elements)
        tets = mesh.tets[self.simulated_elements].astype(np.int32)

        rest_inverse, shape_weights, volume_weights = self._build_material(tets, muscles)
        self._build_global_matrix(tets, shape_weights + volume_weights, rest_inverse)
        self._allocate(tets, rest_inverse, shape_weights, volume_weights, muscles, embedding)
        self._lip_nodes = None
        if lip_contact or (lip_contact is None and resolution == "hr"):
            self._prepare_lip_contact()
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
        shear = material.shear_modulus * (1.0 + (material.muscle_stiffness_ratio - 1.0) * weight)
        shape_weights = self.rest_volumes * shear
        volume_weights = self.rest_volumes * shear * material.volume_stiffness_ratio
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
        self._inertia = np.zeros(len(free))
        if self.dynamics:
            h = self.time_step
            self._inertia = (1.0 + h * self.material.damping) * masses[free] / h**2
        self._base_matrix = (self._stiffness_ff + sp.diags(self._inertia)).tocsc()
        self._factors: OrderedDict[tuple, _Factor] = OrderedDict()
        clock = time.perf_counter()
        self._factor_for((), None)
        self.factor_seconds = time.perf_counter() - clock

    def _allocate(self, tets, rest_inverse, shape_weights, volume_weights, muscles, embedding):
        """Every device array, once; and the skin's embedded and rigid vertices."""
        d, rig = self.device, self.rig
        order = np.argsort(self._entry_element, kind="stable")
        entry_start = np.searchsorted(self._entry_element[order], np.arange(len(tets) + 1))
        self.max_contraction = _max_contractions(rig, self.face_model)
        self.muscle_index = {name: i for i, name in enumerate(rig.muscle_names)}
        self.embedding = embedding
        self.embedded_count = len(embedding.vertices)
        self._embedding_nodes = self.mesh.tets[embedding.elements].astype(np.int64)
        self._embedding_weights = embedding.weights.astype(np.float64)
        # Skin points a contact force can move: their element has a free node.
        labels = self.mesh.node_labels
        self._contact_movable = (labels[self._embedding_nodes] == FREE).any(axis=1)
        rigid = np.concatenate([rig.skull_vertices, rig.jaw_vertices]).astype(np.int32)
        rigid_transform = np.r_[
            np.zeros(len(rig.skull_vertices), np.int32), np.ones(len(rig.jaw_vertices), np.int32)
        ]
        self.skin_vertex_indices = np.concatenate([embedding.vertices, rigid]).astype(np.int32)

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
        self.point_nodes = array(self._embedding_nodes.astype(np.int32), wp.int32)
        self.point_weights = array(embedding.weights.astype(np.float32), wp.vec4)
        self.embedded_positions = wp.zeros(self.embedded_count, dtype=wp.vec3, device=d)
        self.rigid_rest = array(self.face_model.neutral[rigid].astype(np.float32), wp.vec3)
        self.rigid_transforms = array(rigid_transform, wp.int32)
        self.rigid_rotations = wp.zeros(2, dtype=wp.mat33, device=d)
        self.rigid_translations = wp.zeros(2, dtype=wp.vec3, device=d)
        self.rigid_positions = wp.zeros(len(rigid), dtype=wp.vec3, device=d)
        self.contact_depths = wp.zeros(self.embedded_count, dtype=float, device=d)
        self.contact_colliders = wp.zeros(self.embedded_count, dtype=wp.int32, device=d)
        self.spheres = wp.zeros(0, dtype=wp.vec4, device=d)
        self.plane_points = wp.zeros(0, dtype=wp.vec3, device=d)
        self.plane_normals = wp.zeros(0, dtype=wp.vec3, device=d)
        self._collider_key: tuple = ()
        self._host_positions = np.zeros((n, 3), dtype=np.float32)
        self._identity_rotations = np.tile(np.array([0, 0, 0, 1], np.float32), (e, 1))

    def _prepare_lip_contact(self) -> None:
        """Lip contact surfaces of the HR mesh and, per lip node, candidate triangles of
        the other lip (the nearest by rest centroid)."""
        from scipy.spatial import cKDTree

        from .hr_mesh import lip_contact_surfaces
        from .lattice import LipZone

        upper, lower = lip_contact_surfaces(self.mesh, LipZone.from_model(self.face_model))
        if not len(upper) or not len(lower):
            return
        self._lip_triangles = np.r_[upper, lower].astype(np.int64)
        rest = self.rest_positions
        nodes, candidates = [], []
        for own, other, offset in ((lower, upper, 0), (upper, lower, len(upper))):
            k = min(LIP_CANDIDATES, len(other))
            own_nodes = np.unique(own)
            _, nearest = cKDTree(rest[other].mean(axis=1)).query(rest[own_nodes], k=k)
            nodes.append(own_nodes)
            candidates.append(nearest.reshape(len(own_nodes), k) + offset)
        k = min(c.shape[1] for c in candidates)
        self._lip_nodes = np.concatenate(nodes).astype(np.int64)
        self._lip_candidates = np.concatenate([c[:, :k] for c in candidates])
        self._lip_rest_depth = self._lip_geometry(self.rest_positions)[0]

    # --- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to rest: positions, velocities, head pose and rotation guesses."""
        self.positions = self.rest_positions.copy()
        self.velocities = np.zeros((len(self.free_nodes), 3))
        self._head = np.eye(4)
        self._previous_positions = None
        self.element_rotations.assign(self._identity_rotations)

    def state(self) -> dict[str, np.ndarray]:
        """Everything that carries over from one frame to the next, copied: positions
        (N, 3) and velocities (F, 3) float64 cm and cm/s, the head pose (4, 4), the last
        frame's positions (absent before the first step) and the rotation guesses
        (E, 3, 3) float32. ``set_state`` of it continues bit for bit."""
        state = {
            "positions": self.positions.copy(),
            "velocities": self.velocities.copy(),
            "head": self._head.copy(),
            "element_rotations": self.element_rotations.numpy().copy(),
        }
        if self._previous_positions is not None:
            state["previous_positions"] = self._previous_positions.copy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Continue from a ``state()`` of a simulator of the same rig and resolution."""
        positions = np.asarray(state["positions"], dtype=np.float64)
        if positions.shape != self.rest_positions.shape:
            raise ValueError(
                f"A state of {len(positions)} nodes does not fit this {self.resolution.upper()} "
                f"mesh of {self.node_count}."
            )
        self.positions = positions.copy()
        self.velocities = np.array(state["velocities"], dtype=np.float64)
        self._head = np.array(state["head"], dtype=np.float64)
        previous = state.get("previous_positions")
        self._previous_positions = None if previous is None else np.array(previous, np.float64)
        self.element_rotations.assign(np.asarray(state["element_rotations"], np.float32))

    # --- factors and penalty terms -----------------------------------------------------------

    def _factor_for(self, spring_key: tuple, spring_matrix) -> _Factor:
        """The factor of the base matrix plus a set of springs, from the cache or new."""
        factor = self._factors.get(spring_key)
        if factor is not None:
            self._factors.move_to_end(spring_key)
            return factor
        matrix = self._base_matrix if spring_matrix is None else self._base_matrix + spring_matrix
        factor = _Factor(matrix, self.backend)
        self.factorizations += 1
        self._factors[spring_key] = factor
        while len(self._factors) > FACTOR_CACHE_SIZE:
            oldest = next(key for key in self._factors if key != ())  # keep the base factor
            self._factors.pop(oldest)
        return factor

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
                nodes.append(self._embedding_nodes[row])
                weights.append(self._embedding_weights[row])
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

    def _set_colliders(self, frame: _Frame, colliders) -> None:
        spheres = [c for c in colliders if isinstance(c, Sphere)]
        planes = [c for c in colliders if isinstance(c, Plane)]
        frame.colliding = bool(colliders)
        frame.sphere_centres = np.array([c.centre for c in spheres], np.float64).reshape(-1, 3)
        frame.sphere_radii = np.array([c.radius for c in spheres], np.float64)
        frame.plane_points = np.array([c.point for c in planes], np.float64).reshape(-1, 3)
        frame.plane_normals = np.array([c.normal for c in planes], np.float64).reshape(-1, 3)
        key = (tuple(spheres), tuple(planes))
        if key != self._collider_key:
            spheres_array = np.c_[frame.sphere_centres, frame.sphere_radii].astype(np.float32)
            self.spheres = wp.array(spheres_array, dtype=wp.vec4, device=self.device)
            self.plane_points = wp.array(
                frame.plane_points.astype(np.float32), dtype=wp.vec3, device=self.device
            )
            self.plane_normals = wp.array(
                frame.plane_normals.astype(np.float32), dtype=wp.vec3, device=self.device
            )
            self._collider_key = key

    def _activation_vector(self, activations: dict[str, float]) -> np.ndarray:
        values = np.zeros(len(self.rig.muscle_names), dtype=np.float32)
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
        wp.launch(
            kernels.project_elements,
            dim=self.element_count,
            inputs=[self.vertex_positions, self.tet_indices, self.rest_inverse,
                    self.element_actuations, self.shape_weights, self.volume_weights,
                    int(self.polar == "svd"), self.element_rotations],
            outputs=[self.element_targets, self.element_energies],
            device=self.device,
        )  # fmt: skip
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

    def _embedded_points(self) -> None:
        wp.launch(
            kernels.interpolate_points,
            dim=self.embedded_count,
            inputs=[self.vertex_positions, self.point_nodes, self.point_weights],
            outputs=[self.embedded_positions],
            device=self.device,
        )

    def _detect_contacts(self) -> np.ndarray:
        """Depth (P,) of every embedded skin point in the colliders (> 0 inside) at the
        uploaded positions; the collider of each in ``contact_colliders``."""
        self._embedded_points()
        wp.launch(
            kernels.detect_contacts,
            dim=self.embedded_count,
            inputs=[self.embedded_positions, self.spheres, self.plane_points, self.plane_normals],
            outputs=[self.contact_depths, self.contact_colliders],
            device=self.device,
        )
        return self.contact_depths.numpy()

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
        head = controls.head_transform
        jaw = head @ self.rig.anatomy.jaw_transform(controls.jaw)
        frame = _Frame(head=head, jaw=jaw, positions=self.positions.copy())
        if self.dynamics:
            frame.previous_free = self.positions[free].copy()
            damping = 1.0 + h * self.material.damping
            frame.inertial_target = frame.previous_free + h * self.velocities / damping
            frame.positions[free] = frame.inertial_target
        else:  # carry the last solution along with the head: a rigid motion costs nothing
            moved = head @ np.linalg.inv(self._head)
            start = self.positions
            if self.extrapolate and self._previous_positions is not None:
                start = 2.0 * self.positions - self._previous_positions  # linear prediction
            frame.positions = start @ moved[:3, :3].T + moved[:3, 3]
            if not np.allclose(moved[:3, :3], np.eye(3)):
                wp.launch(
                    kernels.rotate_rotations,
                    dim=self.element_count,
                    inputs=[_quaternion(moved[:3, :3])],
                    outputs=[self.element_rotations],
                    device=self.device,
                )
        rest, positions = self.rest_positions, frame.positions
        positions[self.skull_nodes] = rest[self.skull_nodes] @ head[:3, :3].T + head[:3, 3]
        positions[self.jaw_nodes] = rest[self.jaw_nodes] @ jaw[:3, :3].T + jaw[:3, 3]

        frame.rhs = -(self._stiffness_fd @ positions[self.prescribed_nodes])
        if self.dynamics:
            frame.rhs += self._inertia[:, None] * frame.inertial_target
        if controls.gravity is not None:
            frame.gravity = np.asarray(controls.gravity, dtype=np.float64)
            frame.rhs += self.node_masses[free][:, None] * frame.gravity
        springs = self._resolve_springs(controls.point_springs, warnings)
        spring_matrix = None
        if springs is not None:
            frame.spring_key, *rest_of = springs
            frame.springs = tuple(rest_of)
            if frame.spring_key not in self._factors:
                spring_matrix = self._penalty_matrix(*frame.springs[:3])
            self._penalty_rhs(*frame.springs, positions, frame.rhs)
        frame.factor = self._factor_for(frame.spring_key, spring_matrix)
        self._set_colliders(frame, controls.colliders)
        return frame

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
        rhs = self._assemble()[self.free_nodes] + frame.rhs
        energy += self._extra_energy(frame, frame.positions)
        seconds["rhs"] += time.perf_counter() - clock
        return rhs, energy

    def _point_positions(self, points: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Embedded skin points (m, 3) float64 at mesh positions (N, 3)."""
        nodes = self._embedding_nodes[points]
        return np.einsum("pk,pkd->pd", self._embedding_weights[points], positions[nodes])

    def _collider_rows(self, frame: _Frame) -> int:
        """Rows for skin points inside a collider (within the margin) at the uploaded
        positions; returns how many are new."""
        margin = self.material.contact_margin_cm
        inside = np.flatnonzero(self._detect_contacts() > -margin)
        inside = inside[self._contact_movable[inside]]
        colliders = self.contact_colliders.numpy()[inside].astype(np.int64)
        return frame.contacts.add(
            inside, self._embedding_nodes[inside], self._embedding_weights[inside],
            colliders, np.full(len(inside), -1),
        )  # fmt: skip

    def _lip_geometry(self, positions: np.ndarray):
        """Each lip node against its candidate triangles of the other lip (Q, k) at
        ``positions`` (N, 3): (signed depth along the triangle's outward normal, > 0 on the
        outer side; barycentric coordinates (Q, k, 3) of its projection; whether the node
        projects onto the triangle within reach)."""
        triangles = self._lip_triangles[self._lip_candidates]  # (Q, k, 3)
        corners = positions[triangles]  # (Q, k, 3, 3)
        normals = np.cross(corners[..., 1, :] - corners[..., 0, :],
                           corners[..., 2, :] - corners[..., 0, :])  # fmt: skip
        normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
        point = positions[self._lip_nodes][:, None, :]
        depth = np.einsum("qkd,qkd->qk", point - corners[..., 0, :], normals)
        bary = _barycentric_on_triangles(point - depth[..., None] * normals, corners)
        facing = (bary.min(axis=-1) > -LIP_BARY_SLACK) & (depth > -LIP_DEPTH_CM)
        return depth, bary, facing

    def lip_penetration_cm(self, volume_positions: np.ndarray) -> float:
        """How far (cm) the deepest lip node lies inside the other lip beyond where it lies
        at rest, for mesh positions (N, 3); 0 without lip contact surfaces."""
        if self._lip_nodes is None:
            return 0.0
        depth, _, facing = self._lip_geometry(np.asarray(volume_positions, np.float64))
        beyond = np.where(facing, depth - np.minimum(self._lip_rest_depth, 0.0), np.inf)
        return float(max(-beyond.min(), 0.0))

    def _lip_rows(self, frame: _Frame, positions: np.ndarray) -> int:
        """Rows for lip nodes inside the other lip, at ``positions`` (N, 3): each lip node
        against the nearest facing triangles of the other lip (candidates from the rest
        shape), inside when it projects onto one and lies deeper behind it than at rest (by
        less than ``LIP_DEPTH_CM``). Returns how many rows are new."""
        depth, bary, facing = self._lip_geometry(positions)
        hit = facing & (depth < np.minimum(self._lip_rest_depth, 0.0))
        node_hit = hit.any(axis=1)
        if not node_hit.any():
            return 0
        best = np.argmax(np.where(hit, -np.abs(depth), -np.inf), axis=1)[node_hit]
        rows = np.flatnonzero(node_hit)
        chosen = self._lip_candidates[rows, best]
        b = np.clip(bary[rows, best], 0.0, None)
        b /= b.sum(axis=1, keepdims=True)
        nodes = np.c_[self._lip_nodes[rows], self._lip_triangles[chosen]]
        weights = np.c_[np.ones(len(rows)), -b]
        movable = (self._free_slot[nodes] >= 0).any(axis=1)
        keys = -1 - (self._lip_nodes[rows] * len(self._lip_triangles) + chosen)
        rest = self.rest_positions[nodes]  # (r, 4, 3)
        normal = np.cross(rest[:, 2] - rest[:, 1], rest[:, 3] - rest[:, 1])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        rest_gap = np.minimum(np.einsum("pd,pkd,pk->p", normal, rest, weights), 0.0)
        return frame.contacts.add(
            keys[movable], nodes[movable], weights[movable],
            np.full(movable.sum(), -1), chosen[movable], rest_gap[movable],
        )  # fmt: skip

    def _contact_planes(self, frame: _Frame, positions: np.ndarray):
        """(normals (m, 3), offsets (m,)) of every row at ``positions`` (N, 3): the row
        reads Σ_k w_k nᵀx_k ≥ offset + margin."""
        rows = frame.contacts
        where = np.einsum("pk,pkd->pd", rows.weights, positions[rows.nodes])
        normals = np.zeros_like(where)
        offsets = np.zeros(len(where))
        collider = rows.collider
        sphere = (collider >= 0) & (collider < len(frame.sphere_radii))
        centres = frame.sphere_centres[collider[sphere]]
        direction = where[sphere] - centres
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
        normals[sphere] = direction
        offsets[sphere] = np.einsum("pd,pd->p", direction, centres)
        offsets[sphere] += frame.sphere_radii[collider[sphere]]
        plane = collider >= len(frame.sphere_radii)
        index = collider[plane] - len(frame.sphere_radii)
        normals[plane] = frame.plane_normals[index]
        offsets[plane] = np.einsum(
            "pd,pd->p", frame.plane_normals[index], frame.plane_points[index]
        )
        lip = rows.triangle >= 0
        if lip.any():
            corners = positions[self._lip_triangles[rows.triangle[lip]]]
            normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            normals[lip] = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
            # lips closed at rest touch: no margin between them, and no more than at rest
            offsets[lip] = rows.rest_gap[lip] - self.material.contact_margin_cm
        return normals, offsets

    def _contact_basis(self, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
        """(Z = K⁻¹B (n, m), BᵀZ (m, m)) for the frame's rows, extended for new rows only:
        each new row costs one solve."""
        rows = frame.contacts
        response, coupling = rows.basis if rows.basis is not None else (None, None)
        done = 0 if response is None else response.shape[1]
        if done == len(rows.keys):
            return response, coupling
        slots = self._free_slot[rows.nodes]
        weights = np.where(slots >= 0, rows.weights, 0.0)
        slots = np.maximum(slots, 0)
        new = np.arange(done, len(rows.keys))
        columns = np.zeros((len(self.free_nodes), len(new)))
        np.add.at(columns, (slots[new].ravel(), np.repeat(np.arange(len(new)), 4)),
                  weights[new].ravel())  # fmt: skip
        fresh = np.asarray(frame.factor.solve_many(columns))

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

    def _project_contacts(self, frame: _Frame, current: np.ndarray, free_target: np.ndarray):
        """The global step under the contacts: the minimiser of the frame's quadratic with
        every skin point outside the colliders and (HR) no lip node inside the other lip,
        frictionless and exact along the normals.

        ``free_target`` (n, 3) is the unconstrained minimiser, ``current`` (n, 3) the
        iterate it came from. Each row is linearised at the current positions (a collider's
        tangent plane, which for a sphere lies outside it; a lip triangle's plane). With
        Z = K⁻¹B (B: the rows' node weights on the free nodes, one column per row) the
        contact forces λ ≥ 0 solve the small complementarity problem
        W λ + gap(x̃) ≥ 0 ⟂ λ, W = (BᵀZ) ∘ (N Nᵀ), and x = x̃ + Z (λ ⊙ N). Points that a
        correction pushes into contact join the rows and the step is redone. The rows and
        their Z depend on the factor, which is fixed within a frame."""
        margin = self.material.contact_margin_cm
        solution, rows = free_target, frame.contacts
        for attempt in range(CONTACT_ROUNDS):
            frame.positions[self.free_nodes] = solution
            new = 0
            if frame.colliding:
                self._upload_positions(frame.positions)
                new += self._collider_rows(frame)
            if self._lip_nodes is not None:
                new += self._lip_rows(frame, frame.positions)
            if (attempt > 0 and not new) or not len(rows.keys):
                break
            response, coupling = self._contact_basis(frame)
            frame.positions[self.free_nodes] = current
            normals, offsets = self._contact_planes(frame, frame.positions)
            frame.positions[self.free_nodes] = free_target
            reach = np.einsum("pk,pkd->pd", rows.weights, frame.positions[rows.nodes])
            gaps = np.einsum("pd,pd->p", normals, reach) - offsets - margin
            forces = _solve_lcp(coupling * (normals @ normals.T), gaps, rows.forces)
            rows.forces = forces
            solution = free_target + response @ (forces[:, None] * normals)
        return solution

    def step(self, controls: Controls | None = None) -> StepResult:
        """Advance one frame under ``controls`` (validated here) and return the result."""
        with _single_threaded_blas():
            return self._step(controls)

    def _step(self, controls: Controls | None) -> StepResult:
        seconds = dict.fromkeys(STAGES, 0.0)
        clock = time.perf_counter()
        controls, warnings = validate_controls(controls or Controls(), self.rig.muscle_names)
        factorizations_before = self.factorizations
        frame = self._begin_frame(controls, warnings)
        seconds["setup"] += time.perf_counter() - clock

        accelerator = _Anderson(self.anderson_depth) if self.acceleration == "anderson" else None
        energies: list[float] = []
        x = frame.positions[self.free_nodes].copy()
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
            plain = frame.factor.solve(rhs).copy()
            seconds["solve"] += time.perf_counter() - clock
            if frame.colliding or self._lip_nodes is not None:
                clock = time.perf_counter()
                plain = self._project_contacts(frame, x, plain)
                seconds["contacts"] += time.perf_counter() - clock
            residual = float(np.sqrt(((plain - x) ** 2).sum(axis=1).max()) / self.mean_edge_cm)
            if residual <= self.tolerance:
                x, converged = plain, True
                break
            extrapolated = None if accelerator is None else accelerator.extrapolate(x, plain)
            x, fallback = (plain, None) if extrapolated is None else (extrapolated, plain)
        if not converged and fallback is not None:
            x = fallback

        clock = time.perf_counter()
        penetration = self._store(frame, x)
        skin = self._skin_positions(frame.head, frame.jaw)
        seconds["skin"] += time.perf_counter() - clock
        return StepResult(
            skin_positions=skin,
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
            lip_penetration_cm=self.lip_penetration_cm(self.positions),
            seconds=seconds,
        )

    def _store(self, frame: _Frame, x: np.ndarray) -> float:
        """Keep the frame's solution (free positions ``x`` (n, 3)) as the new state and
        upload it; returns the deepest skin penetration into a collider (cm)."""
        positions = frame.positions
        positions[self.free_nodes] = x
        if self.dynamics:
            self.velocities = (x - frame.previous_free) / self.time_step
        moved = frame.head @ np.linalg.inv(self._head)  # the last solution in this head pose
        self._previous_positions = self.positions @ moved[:3, :3].T + moved[:3, 3]
        self.positions, self._head = positions, frame.head
        self._upload_positions(positions)
        if not frame.colliding:
            return 0.0
        return float(max(self._detect_contacts().max(), 0.0))

    def _skin_positions(self, head: np.ndarray, jaw: np.ndarray) -> np.ndarray:
        """(P, 3) float32: the embedded skin at the uploaded positions, then the rigid
        skull and jaw vertices moved by the head and head ∘ jaw transforms."""
        self._embedded_points()
        self.rigid_rotations.assign(np.stack([head[:3, :3], jaw[:3, :3]]).astype(np.float32))
        self.rigid_translations.assign(np.stack([head[:3, 3], jaw[:3, 3]]).astype(np.float32))
        wp.launch(
            kernels.transform_points,
            dim=len(self.rigid_positions),
            inputs=[self.rigid_rest, self.rigid_transforms, self.rigid_rotations,
                    self.rigid_translations],
            outputs=[self.rigid_positions],
            device=self.device,
        )  # fmt: skip
        return np.concatenate([self.embedded_positions.numpy(), self.rigid_positions.numpy()])

    def ict_positions(self, result: StepResult) -> np.ndarray:
        """All 26,719 ICT vertices (V, 3) float32 cm for the render head: the simulated ones
        from the result, the others at rest moved by the head transform."""
        full = apply_transform(result.head_transform, self.face_model.neutral)
        full[self.skin_vertex_indices] = result.skin_positions
        return full


__all__ = ["Material", "Simulator", "StepResult", "PLAYBACK_TOLERANCE", "TRAINING_TOLERANCE"]
