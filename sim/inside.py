"""Inside/outside of a closed triangle surface for points on a regular grid (ray parity).

Each grid column (x_i, y_j) casts a ray along +z; a node is inside when an odd number of
surface crossings lie above it. Exact for grid nodes up to ties, which a tiny offset of
the grid (not of the surface) avoids.
"""

from __future__ import annotations

import numpy as np


def inside_regular_grid(
    positions: np.ndarray, triangles: np.ndarray, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray
) -> np.ndarray:
    """Inside mask (len(xs), len(ys), len(zs)) of grid nodes; coordinates ascending, cm."""
    p = positions.astype(np.float64)
    a, b, c = p[triangles[:, 0]], p[triangles[:, 1]], p[triangles[:, 2]]
    lo = np.minimum(np.minimum(a, b), c)
    hi = np.maximum(np.maximum(a, b), c)
    i0 = np.searchsorted(xs, lo[:, 0])
    i1 = np.searchsorted(xs, hi[:, 0], side="right")
    j0 = np.searchsorted(ys, lo[:, 1])
    j1 = np.searchsorted(ys, hi[:, 1], side="right")
    ni, nj = np.maximum(i1 - i0, 0), np.maximum(j1 - j0, 0)
    count = ni * nj
    tri = np.repeat(np.arange(len(triangles)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ii = i0[tri] + offset // np.maximum(nj[tri], 1)
    jj = j0[tri] + offset % np.maximum(nj[tri], 1)
    px, py = xs[ii], ys[jj]
    ta, tb, tc = a[tri], b[tri], c[tri]
    det = (tb[:, 0] - ta[:, 0]) * (tc[:, 1] - ta[:, 1]) - (tc[:, 0] - ta[:, 0]) * (
        tb[:, 1] - ta[:, 1]
    )
    ok = np.abs(det) > 1e-14
    det = np.where(ok, det, 1.0)
    u = ((px - ta[:, 0]) * (tc[:, 1] - ta[:, 1]) - (tc[:, 0] - ta[:, 0]) * (py - ta[:, 1])) / det
    v = ((tb[:, 0] - ta[:, 0]) * (py - ta[:, 1]) - (px - ta[:, 0]) * (tb[:, 1] - ta[:, 1])) / det
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
    z_hit = ta[:, 2] + u * (tb[:, 2] - ta[:, 2]) + v * (tc[:, 2] - ta[:, 2])
    column = (ii * len(ys) + jj)[hit]
    z_hit = z_hit[hit]
    order = np.lexsort((z_hit, column))
    column, z_hit = column[order], z_hit[order]
    inside = np.zeros((len(xs) * len(ys), len(zs)), dtype=bool)
    starts = np.searchsorted(column, np.arange(len(xs) * len(ys)))
    ends = np.searchsorted(column, np.arange(len(xs) * len(ys)), side="right")
    for col in np.flatnonzero(ends > starts):
        crossings = z_hit[starts[col] : ends[col]]
        above = len(crossings) - np.searchsorted(crossings, zs, side="right")
        inside[col] = above % 2 == 1
    return inside.reshape(len(xs), len(ys), len(zs))
