"""Warp kernels of the eyelid membrane (``sim/eyelids.py``): the local step per triangle
and the eyeball contact per vertex. Typed float32, run on "cpu" (the lids are small: a
thousand vertices, two thousand triangles); numpy's per-call cost made these two steps
three quarters of a frame's lid time.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False, "optimization_level": 3})


@wp.kernel
def rotated_targets(
    columns: wp.array[wp.vec3],
    shapes: wp.array[wp.vec3],
    targets: wp.array[wp.vec3],
):
    """Per triangle t: the target shape K (symmetric 2×2 as (k00, k01, k11)) turned onto
    the current deformation F (columns 2t, 2t+1): the rows of (R·K)ᵀ with R the polar
    factor of F·K (Procrustes), i.e. Rᵀ = (K·FᵀF·K)^(−1/2)·K·Fᵀ, in closed form."""
    t = wp.tid()
    g0 = columns[2 * t]
    g1 = columns[2 * t + 1]
    shape = shapes[t]
    k00 = shape[0]
    k01 = shape[1]
    k11 = shape[2]
    h0 = k00 * g0 + k01 * g1
    h1 = k01 * g0 + k11 * g1
    a00 = wp.dot(h0, h0)
    a01 = wp.dot(h0, h1)
    a11 = wp.dot(h1, h1)
    root = wp.sqrt(wp.max(a00 * a11 - a01 * a01, 0.0))
    scale = wp.sqrt(wp.max(a00 + a11 + 2.0 * root, 1.0e-20))
    r00 = (a00 + root) / scale  # √(K·FᵀF·K)
    r01 = a01 / scale
    r11 = (a11 + root) / scale
    det = r00 * r11 - r01 * r01
    if det < 1.0e-12:  # a collapsed triangle: no pull this iteration
        targets[2 * t] = g0
        targets[2 * t + 1] = g1
        return
    m00 = r11 / det
    m01 = -r01 / det
    m11 = r00 / det
    q0 = m00 * h0 + m01 * h1  # rows of Rᵀ
    q1 = m01 * h0 + m11 * h1
    targets[2 * t] = k00 * q0 + k01 * q1
    targets[2 * t + 1] = k01 * q0 + k11 * q1


@wp.func
def table_value(radius: wp.array3d[float], eye: int, i: int, j: int) -> float:
    return radius[eye, i, j % radius.shape[2]]


@wp.kernel
def push_out(
    positions: wp.array[wp.vec3],
    eye_of: wp.array[wp.int32],
    centres: wp.array[wp.vec3],
    radius: wp.array3d[float],
    clearance: wp.array[float],
    polar_max: float,
    out: wp.array[wp.vec3],
    depth: wp.array[float],
):
    """Per lid vertex: its eyeball's surface distance along the ray from the eye's centre
    (bilinear in the polar × azimuth table), the vertex moved out onto the surface plus
    its clearance when it lies deeper, and how deep it was (cm, 0 outside)."""
    v = wp.tid()
    eye = eye_of[v]
    offset = positions[v] - centres[eye]
    rho = wp.length(offset)
    out[v] = positions[v]
    depth[v] = 0.0
    if rho < 1.0e-9:
        return
    direction = offset / rho
    steps = radius.shape[1]
    polar = wp.acos(wp.clamp(direction[2], -1.0, 1.0)) / polar_max * float(steps - 1)
    if polar > float(steps - 1):
        return  # behind the table's reach: no eyeball there
    azimuth = wp.atan2(direction[1], direction[0])
    if azimuth < 0.0:
        azimuth = azimuth + 2.0 * wp.pi
    azimuth = azimuth / (2.0 * wp.pi) * float(radius.shape[2])
    i = wp.min(int(wp.floor(polar)), steps - 2)
    j = int(wp.floor(azimuth))
    fi = wp.clamp(polar - float(i), 0.0, 1.0)
    fj = azimuth - float(j)
    near = (1.0 - fj) * table_value(radius, eye, i, j) + fj * table_value(radius, eye, i, j + 1)
    far = (1.0 - fj) * table_value(radius, eye, i + 1, j) + fj * table_value(
        radius, eye, i + 1, j + 1
    )
    surface = (1.0 - fi) * near + fi * far
    gap = rho - surface - clearance[v]
    if gap < 0.0:
        out[v] = positions[v] - direction * gap
        depth[v] = -gap
