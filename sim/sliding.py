"""Where the flesh glides over the bone: bone nodes that slide along the bone surface.

Under the forehead the frontalis and the galea glide over the skull on a loose areolar
layer, which is how a brow rises a centimetre; a lattice whose bone nodes are all fixed
glues every forehead element to the skull and the contraction cannot add up along the
muscle (measured at ``default``: brow raise 2.2 mm; with this band sliding, 5.1 mm). The
band ends below the frontalis origins, which stay attached (were they free, the muscle
would pull its own origin down as much as the brow up).

A sliding node is a bone node (skull-labelled, touching a tissue element) inside a band; it
is simulated like a free node but held to the tangent plane of the bone at its rest
position by a projective constraint (``sim/simulator.py``): energy k/2 (n·(x − p))², with
the plane moving with the head, k in ``Material.sliding_stiffness``.
"""

from __future__ import annotations

import numpy as np

from .simmesh import FREE, SKULL

# Head-frame bands (cm): the forehead between the brows (y ≈ 6) and the frontalis origins
# (y ≈ 10.5), in front of the temples.
FOREHEAD_BAND = {"y_cm": (5.0, 9.0), "z_min_cm": 4.0}


def sliding_nodes(rest_positions: np.ndarray, tets: np.ndarray, node_labels: np.ndarray):
    """Sliding nodes (S,) int64 and the unit normals (S, 3) float64 of their bone planes
    (pointing into the flesh: the mean direction to the free nodes they share elements
    with)."""
    free = node_labels == FREE
    tissue = tets[free[tets].any(axis=1)]
    touching = np.zeros(len(node_labels), dtype=bool)
    touching[tissue.ravel()] = True
    low, high = FOREHEAD_BAND["y_cm"]
    y, z = rest_positions[:, 1], rest_positions[:, 2]
    in_band = (y > low) & (y < high) & (z > FOREHEAD_BAND["z_min_cm"])
    nodes = np.flatnonzero((node_labels == SKULL) & touching & in_band)
    slot = np.full(len(node_labels), -1)
    slot[nodes] = np.arange(len(nodes))
    normals = np.zeros((len(nodes), 3))
    for corner in range(4):
        owner = slot[tissue[:, corner]]
        rows = owner >= 0
        for other in range(4):
            partner = tissue[rows, other]
            keep = free[partner]
            offset = rest_positions[partner[keep]] - rest_positions[tissue[rows, corner][keep]]
            np.add.at(normals, owner[rows][keep], offset)
    length = np.linalg.norm(normals, axis=1)
    keep = length > 0
    return nodes[keep], normals[keep] / length[keep, None]


__all__ = ["FOREHEAD_BAND", "sliding_nodes"]
