"""A simulation mesh of the material space (LR lattice or HR conforming mesh)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tetmesh import dihedral_angles, signed_volumes

FREE, SKULL, JAW = 0, 1, 2
LIP_NONE, LIP_UPPER, LIP_LOWER = 0, 1, 2


@dataclass
class SimMesh:
    """Rest positions (N, 3) float32 cm; tets (E, 4) int32, positively oriented;
    node_labels (N,) int8 (FREE, SKULL, JAW: skull and jaw nodes are prescribed);
    lip_side (E,) int8 (LIP_UPPER/LIP_LOWER for elements of the separated lips)."""

    rest_positions: np.ndarray
    tets: np.ndarray
    node_labels: np.ndarray
    lip_side: np.ndarray

    @property
    def vertex_count(self) -> int:
        return len(self.rest_positions)

    @property
    def element_count(self) -> int:
        return len(self.tets)

    def volumes(self) -> np.ndarray:
        """Rest element volumes (E,) cm³."""
        return signed_volumes(self.rest_positions, self.tets)

    def min_dihedral_deg(self) -> float:
        return float(dihedral_angles(self.rest_positions, self.tets).min())

    def centroids(self) -> np.ndarray:
        """Rest element centroids (E, 3) float32 cm."""
        return self.rest_positions[self.tets].mean(axis=1).astype(np.float32)
