"""Synthetic meshes shared by the network tests: a box of positively oriented tets."""

import numpy as np

from physface.sim.tetmesh import signed_volumes

KUHN = np.array(
    [[0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7], [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7]]
)


def tet_grid(shape, size):
    """Nodes (N, 3) f4 and positively oriented Kuhn tets (E, 4) of a box grid."""
    axes = [np.linspace(0.0, s, n) for s, n in zip(size, shape, strict=True)]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    index = np.arange(len(nodes)).reshape(shape)
    tets = []
    for i in range(shape[0] - 1):
        for j in range(shape[1] - 1):
            for k in range(shape[2] - 1):
                corner = [
                    index[i + a, j + b, k + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)
                ]
                tets += [[corner[v] for v in tet] for tet in KUHN]
    tets = np.array(tets, dtype=np.int64)
    flip = signed_volumes(nodes, tets) < 0
    tets[flip, 2], tets[flip, 3] = tets[flip, 3], tets[flip, 2].copy()
    return nodes.astype(np.float32), tets
