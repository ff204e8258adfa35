"""The network skin stage: the super-resolution model behind the ``sim.skin_stage.SkinStage``
protocol, so live playback, bakes and renders get the fine face by swapping one object.

Per frame: the LR node positions are taken into the head frame (the model learned
deformation, not where the head is: ``nets.pairs.in_head_frame``), the model (ONNX Runtime,
or torch through ``nets.runtime.TorchUpsampler``) gives the skin rows it was trained on, and
those rows go back out through the head transform. Every other ICT vertex (teeth, eyeballs,
the back of the head, and any row the model does not predict) is placed as the embedded
stage places it; the embedding itself runs only when the model leaves rows to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..sim.skin_stage import EmbeddedSkinStage
from .pairs import lattice_key
from .runtime import ModelError, load_model, model_lattice

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"
# A model whose key differs from the rig's still fits when its LR rest nodes are the rig's
# within this (cm): the key hashes float32 bits, which another CPU's rounding may change,
# while the network depends on the nodes alone (their order and rest positions).
LATTICE_TOLERANCE_CM = 1e-4


def rig_lattice_key(rig) -> str:
    """The key a model trained on ``rig``'s LR lattice carries (``nets.pairs.lattice_key``)."""
    return lattice_key(rig.lr.rest_positions, rig.lr.tets)


def shipped_model(preset: str) -> Path:
    """The model folder that ships with PhysFace for a rig preset (``models/<preset>``;
    it may not exist: only ``default`` ships one)."""
    return SHIPPED_MODELS / preset


def same_lattice(key: str, lr_rest: np.ndarray, rig) -> bool:
    """Whether a model with this key and LR rest nodes (N, 3) cm was made for ``rig``'s
    LR lattice: the same key, or the same nodes within ``LATTICE_TOLERANCE_CM``."""
    if key == rig_lattice_key(rig):
        return True
    rest = np.asarray(rig.lr.rest_positions, np.float32)
    lr_rest = np.asarray(lr_rest, np.float32)
    return lr_rest.shape == rest.shape and float(np.abs(lr_rest - rest).max()) <= (
        LATTICE_TOLERANCE_CM
    )


def model_fits(rig, model) -> bool:
    """Whether the model folder (or its model.npz / model.onnx) was trained on ``rig``'s LR
    lattice; reads only its key and LR nodes (False for a missing or unreadable model)."""
    try:
        return same_lattice(*model_lattice(model), rig)
    except ModelError:
        return False


class NetworkSkinStage:
    """All ICT vertex positions from one simulated LR frame, the face rows by the network.

    ``model`` is a model folder (``model.onnx`` + ``model.npz``, run by ONNX Runtime with
    ``threads``) or an upsampler with the same call (``SkinUpsampler``, ``TorchUpsampler``).
    Raises ``ModelError`` (one line naming the file and the fix) when the model is missing,
    damaged or made for another LR lattice; the caller falls back to the embedded stage."""

    name = "network"
    overlaps = True  # ONNX Runtime runs without the GIL: the next frame simulates beside it

    def __init__(self, rig, model, *, threads: int = 2):
        if isinstance(model, (str, os.PathLike)):
            self.model_path: Path | None = Path(model)
            upsampler = load_model(model, threads=threads)
        else:
            self.model_path, upsampler = None, model
        if not same_lattice(upsampler.key, upsampler.lr_rest, rig):
            raise ModelError(
                f"the network model {self.model_path or ''} was trained for another LR "
                f"lattice (key {str(upsampler.key)[:12]}, this rig "
                f"{rig_lattice_key(rig)[:12]}): use a model trained on this rig or train one"
            )
        rows = upsampler.skin_vertices
        count = len(rig.ict_rest_positions)
        if rows is None or len(rows) != upsampler.skin_count or np.max(rows) >= count:
            raise ModelError(
                f"the network model {self.model_path or ''} does not say which of the "
                f"{count} ICT vertices its {upsampler.skin_count} rows are: export it with "
                "skin_vertices (python -m physface train does)"
            )
        self.upsampler = upsampler
        self.vertices = np.asarray(rows, dtype=np.int64)
        self.embedded = EmbeddedSkinStage(rig, "lr")
        # the embedding runs only when the model leaves some embedded rows to it
        self._embed = bool(np.setdiff1d(self.embedded.vertices, self.vertices).size)
        self.node_count = self.embedded.node_count
        self._local = np.empty((self.node_count, 3), dtype=np.float32)
        self._skin = np.empty((upsampler.skin_count, 3), dtype=np.float32)

    def __call__(
        self, volume_positions: np.ndarray, head_transform: np.ndarray, jaw_transform: np.ndarray
    ) -> np.ndarray:
        """All ICT vertex positions (V, 3) float32 cm (``SkinStage``)."""
        if self._embed:
            out = self.embedded(volume_positions, head_transform, jaw_transform)
        else:
            if volume_positions.shape != (self.node_count, 3):
                raise ValueError(
                    f"The skin stage expects ({self.node_count}, 3) LR positions, got "
                    f"{volume_positions.shape}."
                )
            out = self.embedded.place_rigid_parts(head_transform, jaw_transform)
        rotation = np.asarray(head_transform[:3, :3], dtype=np.float32)
        offset = np.asarray(head_transform[:3, 3], dtype=np.float32)
        np.subtract(volume_positions, offset, out=self._local)
        np.matmul(self._local, rotation, out=self._local)  # (x − t) R: into the head frame
        self.upsampler(self._local, out=self._skin)
        out[self.vertices] = self._skin @ rotation.T + offset
        return out


__all__ = [
    "LATTICE_TOLERANCE_CM",
    "SHIPPED_MODELS",
    "NetworkSkinStage",
    "model_fits",
    "rig_lattice_key",
    "same_lattice",
    "shipped_model",
]
