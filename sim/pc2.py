"""PC2 point caches (the format Blender's Mesh Cache modifier reads), written atomically.

Layout (little endian): ``POINTCACHE2\\0``, int32 version (1), int32 point count, float32
start frame, float32 sample rate (frames per sample), int32 sample count, then
samples × points × 3 float32 positions.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .cache import atomic_path
from .errors import PhysFaceError

_HEADER = struct.Struct("<12siiffi")
_MAGIC = b"POINTCACHE2\0"


def write_pc2(path: Path, frames: np.ndarray, start_frame: float, sample_rate: float = 1.0):
    """Write frames (F, V, 3) to ``path``; the old file stays intact until the rename."""
    frames = np.ascontiguousarray(frames, dtype="<f4")
    if frames.ndim != 3 or frames.shape[2] != 3:
        raise ValueError(f"PC2 frames must be (F, V, 3), got {frames.shape}")
    header = _HEADER.pack(_MAGIC, 1, frames.shape[1], start_frame, sample_rate, frames.shape[0])
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        handle.write(header)
        handle.write(frames.tobytes())


def read_pc2(path: Path) -> tuple[np.ndarray, float, float]:
    """(frames (F, V, 3) float32, start frame, sample rate) of a PC2 file."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size:
        raise PhysFaceError(f"{path} is too short to be a PC2 point cache.")
    magic, _, points, start, rate, samples = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise PhysFaceError(f"{path} is not a PC2 point cache.")
    expected = _HEADER.size + samples * points * 12
    if len(data) != expected:
        raise PhysFaceError(f"{path} is truncated: {len(data)} bytes, {expected} expected.")
    frames = np.frombuffer(data, dtype="<f4", offset=_HEADER.size).reshape(samples, points, 3)
    return frames.astype(np.float32), start, rate
