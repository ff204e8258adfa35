"""The skin stage: render-skin positions from simulated volume positions.

One replaceable step between the simulation and the write to Blender (DESIGN.md,
"Blender"). Release 1 embeds the skin in the lattice by barycentric weights; the neural
upsampler of release 2 implements the same ``SkinStage`` protocol. Vertices not embedded
(teeth, eyeballs, gums, the back of the head) move rigidly with the skull or the jaw.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .rig import Rig


class SkinStage(Protocol):
    """Positions of every ICT vertex from one simulated frame.

    ``volume_positions`` (N, 3) float32 cm of the simulated mesh's nodes, ``head_transform``
    and ``jaw_transform`` (4, 4) world transforms of the skull and the jaw (the jaw's
    includes the head's: ``StepResult.jaw_transform``). Returns (V, 3) float32 cm for all
    V ICT vertices, in a buffer the next call may overwrite (read it, copy it to change it)."""

    name: str
    # Whether the next frame's simulation may run beside it (``HeadPlayer.play``): worth it
    # when the stage's work leaves the interpreter free for the simulation's thread.
    overlaps: bool

    def __call__(
        self, volume_positions: np.ndarray, head_transform: np.ndarray, jaw_transform: np.ndarray
    ) -> np.ndarray: ...


class EmbeddedSkinStage:
    """Skin by barycentric embedding in the simulated mesh (Park et al. 2024's "embedded").

    The project's one skin implementation: live playback, bakes, the dataset (LR and HR)
    and the benchmarks all call it."""

    name = "embedded"
    # 1 ms a frame, nothing to hide; beside it the simulation and the lids only contend for
    # the interpreter (default, bench_live: 40.9 → 43.2 ms a frame with the lookahead)
    overlaps = False

    def __init__(self, rig: Rig, resolution: str = "lr"):
        mesh, embedding = (rig.lr, rig.lr_skin) if resolution == "lr" else (rig.hr, rig.hr_skin)
        if mesh is None or embedding is None:
            raise ValueError(f"The rig {rig.preset!r} has no {resolution.upper()} mesh.")
        self.resolution = resolution
        self.vertices = embedding.vertices.astype(np.int64)
        self.corner_nodes = mesh.tets[embedding.elements].astype(np.int64)  # (P, 4)
        self.weights = embedding.weights.astype(np.float32)  # (P, 4)
        self.rest = rig.ict_rest_positions.astype(np.float32)  # (V, 3)
        self.jaw_vertices = rig.jaw_vertices.astype(np.int64)
        with_head = np.ones(len(self.rest), dtype=bool)
        with_head[self.vertices] = False
        with_head[self.jaw_vertices] = False
        self.head_vertices = np.flatnonzero(with_head)  # skull parts and all not simulated
        self.node_count = len(mesh.rest_positions)
        self._out = self.rest.copy()
        # the rigid parts depend on their transform alone: moved only when it changes
        self._placed = {"head": np.eye(4), "jaw": np.eye(4)}

    def __call__(
        self, volume_positions: np.ndarray, head_transform: np.ndarray, jaw_transform: np.ndarray
    ) -> np.ndarray:
        """All ICT vertex positions (V, 3) float32 cm (``SkinStage``)."""
        if volume_positions.shape != (self.node_count, 3):
            raise ValueError(
                f"The skin stage expects ({self.node_count}, 3) positions of the "
                f"{self.resolution.upper()} mesh, got {volume_positions.shape}."
            )
        corners = volume_positions[self.corner_nodes]  # (P, 4, 3)
        self._out[self.vertices] = np.einsum("pk,pkd->pd", self.weights, corners)
        return self.place_rigid_parts(head_transform, jaw_transform)

    def place_rigid_parts(self, head_transform: np.ndarray, jaw_transform: np.ndarray):
        """Move the vertices that follow the skull or the jaw (the embedded rows are left as
        they are); returns the stage's (V, 3) buffer. Another stage that computes the
        embedded rows itself calls this alone."""
        out = self._out
        for part, vertices, transform in (
            ("head", self.head_vertices, head_transform),
            ("jaw", self.jaw_vertices, jaw_transform),
        ):
            if np.array_equal(transform, self._placed[part]):
                continue
            rotation = transform[:3, :3].T.astype(np.float32)
            out[vertices] = self.rest[vertices] @ rotation + transform[:3, 3].astype(np.float32)
            self._placed[part] = np.array(transform, dtype=np.float64)
        return out
