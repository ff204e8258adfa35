"""The skin stage: render-skin positions from simulated volume positions.

One replaceable step between the simulation and the write to Blender. Release 1 embeds
the skin in the LR lattice by barycentric weights; the neural upsampler of release 2
implements the same call. Vertices not embedded (teeth, eyeballs, gums, the back of the
head) move rigidly with the skull or the jaw.
"""

from __future__ import annotations

import numpy as np

from .face_model import FaceModel
from .rig import Rig


class EmbeddedSkinStage:
    """Skin by barycentric embedding in the LR lattice (Park et al. 2024's "embedded")."""

    name = "embedded"

    def __init__(self, rig: Rig, model: FaceModel):
        embedding = rig.lr_skin
        self.vertices = embedding.vertices.astype(np.int64)
        self.corner_nodes = rig.lr.tets[embedding.elements].astype(np.int64)  # (P, 4)
        self.weights = embedding.weights.astype(np.float32)  # (P, 4)
        self.rest = model.neutral.astype(np.float32)  # (V, 3)
        self.skull_vertices = rig.skull_vertices.astype(np.int64)
        self.jaw_vertices = rig.jaw_vertices.astype(np.int64)
        self._out = self.rest.copy()

    def __call__(
        self, volume_positions: np.ndarray, head_transform: np.ndarray, jaw_transform: np.ndarray
    ) -> np.ndarray:
        """All ICT vertex positions (V, 3) float32 cm from LR positions (N, 3) and the head
        and jaw 4×4 transforms (the jaw's in head coordinates). Returns an internal buffer
        that the next call overwrites: copy it to keep it."""
        out = self._out
        corners = volume_positions[self.corner_nodes]  # (P, 4, 3)
        out[self.vertices] = np.einsum("pk,pkd->pd", self.weights, corners)
        jaw_world = head_transform @ jaw_transform
        for vertices, transform in (
            (self.skull_vertices, head_transform),
            (self.jaw_vertices, jaw_world),
        ):
            rotation = transform[:3, :3].T.astype(np.float32)
            out[vertices] = self.rest[vertices] @ rotation + transform[:3, 3].astype(np.float32)
        return out
