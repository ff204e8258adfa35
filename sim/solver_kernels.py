"""Warp kernels of the projective-dynamics face solver (the local step and its helpers).

Energy per element (DESIGN.md "Physics", Klár et al. 2020 shape targeting):
    Ψ = vol · (μ ‖F − R·A‖² + κ ‖F − P(F)‖²)
F = D_s · D_m⁻¹ (cm/cm), A the symmetric actuation (det 1), R = polar(F·A), and P(F) the
closest matrix with the same singular vectors and det = 1 (volume preservation). Both
targets are held fixed in the global step, where each element contributes
2 vol (μ T_shape + κ T_volume) g_k to node k (g_k the gradient of its barycentric shape
function). Kernels are typed float32 and run unchanged on "cpu" and CUDA devices.
"""

from __future__ import annotations

import warp as wp

# Forward-only kernels at -O3: no adjoints are needed, and both halve the CPU time.
wp.set_module_options({"enable_backward": False, "optimization_level": 3})

# Newton steps safeguarded by bisection; near the plus roots' end 12 left Π s at 0.9997
VOLUME_PROJECTION_STEPS = 40
SHRINK_BISECTION_STEPS = 40


# --- helpers -------------------------------------------------------------------------------


@wp.func
def muscle_actuation(fibre: wp.vec3, stretch: float) -> wp.mat33:
    """Volume-preserving contraction along a unit fibre: λ d dᵀ + λ^(−1/2) (I − d dᵀ)."""
    along = wp.outer(fibre, fibre)
    across = wp.identity(n=3, dtype=float) - along
    return stretch * along + (1.0 / wp.sqrt(stretch)) * across


@wp.func
def deformation_gradient(
    vertex_positions: wp.array[wp.vec3],
    tet_indices: wp.array2d[wp.int32],
    rest_inverse: wp.array[wp.mat33],
    tid: int,
) -> wp.mat33:
    """F = [x1 − x0, x2 − x0, x3 − x0] · D_m⁻¹ of element ``tid``."""
    x0 = vertex_positions[tet_indices[tid, 0]]
    x1 = vertex_positions[tet_indices[tid, 1]]
    x2 = vertex_positions[tet_indices[tid, 2]]
    x3 = vertex_positions[tet_indices[tid, 3]]
    return wp.matrix_from_cols(x1 - x0, x2 - x0, x3 - x0) * rest_inverse[tid]


@wp.func
def plus_root_stretches(sigma: wp.vec3, nu: float) -> wp.vec3:
    """s_i = (σ_i + sqrt(σ_i² + 4ν)) / 2, the stationary stretches for multiplier ν."""
    s = wp.vec3(0.0, 0.0, 0.0)
    for i in range(3):
        s[i] = 0.5 * (sigma[i] + wp.sqrt(wp.max(sigma[i] * sigma[i] + 4.0 * nu, 0.0)))
    return s


@wp.func
def shrunk_stretches(sigma: wp.vec3) -> wp.vec3:
    """The stationary stretches past the plus roots' reach (positive σ, Π σ ≳ 2): the
    smallest σ_k on the minus root, s_k in (0, σ_k/2], the others on the plus root for
    ν = s_k² − σ_k s_k; s_k by bisection on Σ log s_i = 0 (≥ 0 at σ_k/2, where the two
    roots meet, so this continues the plus-root branch without a jump; → −∞ at 0).
    Bisecting s_k rather than ν avoids the minus root's cancellation in float32."""
    k = int(0)
    if sigma[1] < sigma[k]:
        k = 1
    if sigma[2] < sigma[k]:
        k = 2
    low = float(0.0)
    high = 0.5 * sigma[k]
    s = plus_root_stretches(sigma, -0.25 * sigma[k] * sigma[k])
    for _step in range(SHRINK_BISECTION_STEPS):
        shrunk = 0.5 * (low + high)
        s = plus_root_stretches(sigma, shrunk * shrunk - sigma[k] * shrunk)
        s[k] = shrunk
        value = wp.log(wp.max(s[0], 1.0e-30)) + wp.log(wp.max(s[1], 1.0e-30))
        value += wp.log(wp.max(s[2], 1.0e-30))
        if value > 0.0:
            high = shrunk
        else:
            low = shrunk
    return s


@wp.func
def unit_determinant_stretches(sigma: wp.vec3) -> wp.vec3:
    """The closest (Euclidean) signed singular values with product 1.

    Stationarity gives s_i = (σ_i ± sqrt(σ_i² + 4ν)) / 2 for a multiplier ν; on the plus
    roots ν solves Σ log s_i(ν) = 0 (increasing in ν) by Newton's method safeguarded with
    bisection. Inverted elements (σ_2 < 0) get positive stretches. Stretches so large that
    the root leaves the plus branch (Π σ ≳ 2) take the smallest on the minus root
    (``shrunk_stretches``). (It was the uniform scaling σ / (Π σ)^(1/3): not the closest,
    and a jump where an element's volume crossed the branch's end, which raised the energy
    by 480 erg every few iterations at a stretched HR glabella element and stalled the
    amazement theme; issue 19.)
    """
    smallest = wp.min(sigma[0], wp.min(sigma[1], sigma[2]))
    largest = wp.max(wp.abs(sigma[0]), wp.max(wp.abs(sigma[1]), wp.abs(sigma[2])))
    low = float(0.0)
    nu = float(0.0)
    if smallest > 0.0:
        low = -0.25 * smallest * smallest
        at_low = plus_root_stretches(sigma, low)
        if at_low[0] * at_low[1] * at_low[2] >= 1.0:
            return shrunk_stretches(sigma)
    else:
        nu = 0.25
    high = (1.0 + largest) * (1.0 + largest)
    for _step in range(VOLUME_PROJECTION_STEPS):
        s = plus_root_stretches(sigma, nu)
        value = float(0.0)
        slope = float(0.0)
        for i in range(3):
            value += wp.log(wp.max(s[i], 1.0e-30))
            slope += 1.0 / wp.max(s[i] * (2.0 * s[i] - sigma[i]), 1.0e-30)
        if wp.abs(value) < 1.0e-7:
            break
        if value > 0.0:
            high = nu
        else:
            low = nu
        candidate = nu - value / slope
        if candidate <= low or candidate >= high:
            candidate = 0.5 * (low + high)
        nu = candidate
    return plus_root_stretches(sigma, nu)


@wp.func
def extract_rotation(matrix: wp.mat33, guess: wp.quat, iterations: int) -> wp.quat:
    """The rotation R maximising tr(Rᵀ M) (the polar factor of M; a proper rotation even
    for inverted M), refined from ``guess``. Each step is Newton's on skew(Rᵀ M) = 0:
    ω = 2 (tr(S) I − S)⁻¹ axial(skew(B)), B = Rᵀ M, S = sym(B), R ← R·exp(ω); where that
    Hessian is not positive definite, Müller et al. 2016's torque step ω = 2 axial / tr(S)."""
    q = guess
    for _step in range(iterations):
        body = wp.transpose(wp.quat_to_matrix(q)) * matrix
        axial = 0.5 * wp.vec3(
            body[2, 1] - body[1, 2], body[0, 2] - body[2, 0], body[1, 0] - body[0, 1]
        )
        symmetric = 0.5 * (body + wp.transpose(body))
        trace = symmetric[0, 0] + symmetric[1, 1] + symmetric[2, 2]
        hessian = trace * wp.identity(n=3, dtype=float) - symmetric
        omega = wp.vec3(0.0, 0.0, 0.0)
        if hessian[0, 0] > 0.0 and wp.determinant(hessian) > 1.0e-6 * trace * trace * trace:
            omega = 2.0 * (wp.inverse(hessian) * axial)
        else:
            omega = axial * (2.0 / (wp.abs(trace) + 1.0e-9))
        angle = wp.length(omega)
        if angle < 1.0e-6:
            break
        if angle > 1.0:  # a step beyond ~60° is unreliable: take part of it
            omega = omega * (1.0 / angle)
            angle = 1.0
        q = wp.normalize(q * wp.quat_from_axis_angle(omega / angle, angle))
    return q


@wp.func
def is_polar_factor(rotation: wp.mat33, matrix: wp.mat33) -> bool:
    """Whether Rᵀ M is symmetric positive definite to float32 accuracy, i.e. R is the
    polar factor of M (then R maximises tr(Rᵀ M) over all rotations)."""
    body = wp.transpose(rotation) * matrix
    skew = wp.vec3(body[2, 1] - body[1, 2], body[0, 2] - body[2, 0], body[1, 0] - body[0, 1])
    trace = body[0, 0] + body[1, 1] + body[2, 2]
    symmetric = 0.5 * (body + wp.transpose(body))
    positive = symmetric[0, 0] > 0.0 and symmetric[1, 1] > 0.0 and symmetric[2, 2] > 0.0
    if positive:
        positive = wp.determinant(symmetric) > 1.0e-3 * trace * trace * trace
    return positive and wp.length(skew) < 1.0e-4 * wp.abs(trace)


@wp.func
def cofactor(m: wp.mat33) -> wp.mat33:
    """Cofactor matrix det(M)·M⁻ᵀ, the gradient of det at M."""
    return wp.matrix_from_rows(
        wp.cross(wp.vec3(m[1, 0], m[1, 1], m[1, 2]), wp.vec3(m[2, 0], m[2, 1], m[2, 2])),
        wp.cross(wp.vec3(m[2, 0], m[2, 1], m[2, 2]), wp.vec3(m[0, 0], m[0, 1], m[0, 2])),
        wp.cross(wp.vec3(m[0, 0], m[0, 1], m[0, 2]), wp.vec3(m[1, 0], m[1, 1], m[1, 2])),
    )


@wp.func
def onto_unit_determinant(matrix: wp.mat33) -> wp.mat33:
    """Two Gauss-Newton steps of det(P) = 1 along the normal cof(P)."""
    target = matrix
    for _step in range(2):
        normal = cofactor(target)
        target = target - ((wp.determinant(target) - 1.0) / wp.ddot(normal, normal)) * normal
    return target


@wp.func
def unit_determinant_target(deformation: wp.mat33) -> wp.mat33:
    """The closest matrix to F with det = 1. For mild volume change: alternate a step onto
    the surface det = 1 (along its normal cof(P)) with a step toward F within its tangent
    plane, until F − P is normal to the surface (the closest-point condition) to float32
    accuracy; otherwise (or when that has not converged: the two must meet) the exact SVD
    projection."""
    volume = wp.determinant(deformation)
    target = deformation
    converged = int(0)
    if volume > 0.5 and volume < 2.0:
        target = onto_unit_determinant(deformation)
        for _round in range(4):
            normal = cofactor(target)
            gap = deformation - target
            tangential = gap - (wp.ddot(gap, normal) / wp.ddot(normal, normal)) * normal
            if wp.ddot(tangential, tangential) < 1.0e-12:
                converged = 1
                break
            target = onto_unit_determinant(target + tangential)
    if converged == 0:
        u, sigma, v = wp.svd3(deformation)
        target = u * wp.diag(unit_determinant_stretches(sigma)) * wp.transpose(v)
    return target


# --- kernels -------------------------------------------------------------------------------


@wp.kernel
def compute_actuations(
    element_entry_start: wp.array[wp.int32],
    entry_muscle: wp.array[wp.int32],
    entry_weight: wp.array[float],
    entry_fibre: wp.array[wp.vec3],
    muscle_activations: wp.array[float],
    muscle_max_contraction: wp.array[float],
    element_actuations: wp.array[wp.mat33],
):
    """Per element (E,): A = I + Σ_m w_m (A_m(λ_m) − I) / max(1, Σ_m w_m), λ_m = 1 − c_m a_m,
    symmetrised and scaled to det 1. Entries of element e are [start[e], start[e + 1]).

    The weights are covered fractions; where muscle fields overlap (the two procerus bellies
    at the midline, each at weight 1) they would add past a whole element, two parallel
    contractions past 100 % (a negative stretch: an inverted target that the element
    chased back and forth, stalling the fine solve at the nasal bridge), so they share it."""
    tid = wp.tid()
    identity = wp.identity(n=3, dtype=float)
    actuation = identity
    total = float(0.0)
    for entry in range(element_entry_start[tid], element_entry_start[tid + 1]):
        total += entry_weight[entry]
    share = 1.0 / wp.max(total, 1.0)
    for entry in range(element_entry_start[tid], element_entry_start[tid + 1]):
        muscle = entry_muscle[entry]
        stretch = 1.0 - muscle_max_contraction[muscle] * muscle_activations[muscle]
        stretch = wp.max(stretch, 0.05)
        target = muscle_actuation(entry_fibre[entry], stretch)
        actuation = actuation + (share * entry_weight[entry]) * (target - identity)
    actuation = 0.5 * (actuation + wp.transpose(actuation))
    volume = wp.determinant(actuation)
    if volume > 1.0e-6:
        actuation = actuation * (1.0 / wp.pow(volume, 1.0 / 3.0))
    element_actuations[tid] = actuation


@wp.kernel
def project_elements(
    vertex_positions: wp.array[wp.vec3],
    tet_indices: wp.array2d[wp.int32],
    rest_inverse: wp.array[wp.mat33],
    element_actuations: wp.array[wp.mat33],
    shape_weights: wp.array[float],
    volume_weights: wp.array[float],
    exact: int,
    element_rotations: wp.array[wp.quat],
    element_targets: wp.array[wp.mat33],
    element_energies: wp.array[float],
):
    """Local step per element (E,): the shape target R·A (R = polar(F·A), a proper
    rotation) and the volume target P(F) (the closest det-1 matrix); writes
    2 (w_s T_shape + w_v T_volume) with w = vol·stiffness (erg) and the element energy
    w_s ‖F − R A‖² + w_v ‖F − P‖².

    ``exact`` = 1: R and P from wp.svd3 (the reference); 0: R by Newton steps from the
    last iteration's rotation (wp.svd3 where they fail) and P by Gauss-Newton steps on
    det = 1, several times cheaper on the CPU. An inverted element (det F·A ≤ 0) keeps
    its last rotation in ``element_rotations``: its polar factor flips discontinuously
    while it is inverted, and a fixed R turns it into a plain quadratic pulling it back."""
    tid = wp.tid()
    deformation = deformation_gradient(vertex_positions, tet_indices, rest_inverse, tid)
    actuation = element_actuations[tid]
    stretched = deformation * actuation
    q = element_rotations[tid]
    rotation = wp.quat_to_matrix(q)
    if wp.determinant(stretched) > 0.0:
        if exact == 1:
            # svd3 returns proper rotations U, V (det +1) and a signed σ_2
            u_shape, sigma_shape, v_shape = wp.svd3(stretched)
            rotation = u_shape * wp.transpose(v_shape)
            q = wp.quat_from_matrix(rotation)
        else:
            q = extract_rotation(stretched, q, 3)
            rotation = wp.quat_to_matrix(q)
            if not is_polar_factor(rotation, stretched):  # degenerate or far from the guess
                u_shape, sigma_shape, v_shape = wp.svd3(stretched)
                rotation = u_shape * wp.transpose(v_shape)
                q = wp.quat_from_matrix(rotation)
        element_rotations[tid] = q
    if exact == 1:
        u_volume, sigma_volume, v_volume = wp.svd3(deformation)
        stretches = unit_determinant_stretches(sigma_volume)
        volume_target = u_volume * wp.diag(stretches) * wp.transpose(v_volume)
    else:
        volume_target = unit_determinant_target(deformation)
    shape_target = rotation * actuation

    shape_weight = shape_weights[tid]
    volume_weight = volume_weights[tid]
    shape_gap = deformation - shape_target
    volume_gap = deformation - volume_target
    element_energies[tid] = shape_weight * wp.ddot(shape_gap, shape_gap) + volume_weight * wp.ddot(
        volume_gap, volume_gap
    )
    element_targets[tid] = 2.0 * (shape_weight * shape_target + volume_weight * volume_target)


@wp.kernel
def rotate_rotations(turn: wp.quat, element_rotations: wp.array[wp.quat]):
    """Carry the per-element rotation guesses (E,) along a rigid head motion."""
    tid = wp.tid()
    element_rotations[tid] = wp.normalize(turn * element_rotations[tid])


@wp.kernel
def assemble_rhs(
    tet_indices: wp.array2d[wp.int32],
    rest_inverse: wp.array[wp.mat33],
    element_targets: wp.array[wp.mat33],
    node_forces: wp.array[wp.vec3],
):
    """Scatter each element's Gᵀ(target) to its four nodes: T·g_k with g_k (k = 1..3) the
    rows of D_m⁻¹ and g_0 = −Σ g_k. ``node_forces`` (N,) must be zeroed first."""
    tid = wp.tid()
    target = element_targets[tid]
    inverse = rest_inverse[tid]
    f1 = target * inverse[0]
    f2 = target * inverse[1]
    f3 = target * inverse[2]
    wp.atomic_add(node_forces, tet_indices[tid, 0], -(f1 + f2 + f3))
    wp.atomic_add(node_forces, tet_indices[tid, 1], f1)
    wp.atomic_add(node_forces, tet_indices[tid, 2], f2)
    wp.atomic_add(node_forces, tet_indices[tid, 3], f3)


@wp.kernel
def interpolate_points(
    vertex_positions: wp.array[wp.vec3],
    point_nodes: wp.array2d[wp.int32],
    point_weights: wp.array[wp.vec4],
    point_positions: wp.array[wp.vec3],
):
    """Embedded points (P,): barycentric combination of their element's four nodes (cm)."""
    tid = wp.tid()
    weights = point_weights[tid]
    position = wp.vec3(0.0, 0.0, 0.0)
    for k in range(4):
        position += weights[k] * vertex_positions[point_nodes[tid, k]]
    point_positions[tid] = position


@wp.kernel
def detect_contacts(
    point_positions: wp.array[wp.vec3],
    spheres: wp.array[wp.vec4],
    plane_points: wp.array[wp.vec3],
    plane_normals: wp.array[wp.vec3],
    contact_depths: wp.array[float],
    contact_colliders: wp.array[wp.int32],
):
    """Per point (P,): the deepest penetration (cm, > 0 inside) over sphere (centre,
    radius) and plane colliders, and which collider: sphere s → s, plane q → S + q."""
    tid = wp.tid()
    position = point_positions[tid]
    depth = float(-1.0e6)
    collider = int(-1)
    for s in range(spheres.shape[0]):
        sphere = spheres[s]
        penetration = sphere[3] - wp.length(position - wp.vec3(sphere[0], sphere[1], sphere[2]))
        if penetration > depth:
            depth = penetration
            collider = s
    for q in range(plane_points.shape[0]):
        penetration = -wp.dot(position - plane_points[q], plane_normals[q])
        if penetration > depth:
            depth = penetration
            collider = spheres.shape[0] + q
    contact_depths[tid] = depth
    contact_colliders[tid] = collider
