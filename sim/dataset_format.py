"""The paired dataset's on-disk format and its readers (numpy and json only).

Training, evaluation and reports import this module; it imports neither Warp nor scipy
nor the simulator (generation lives in ``dataset``). Layout and schema: README "Dataset".
Every .npz is uncompressed with fixed timestamps, so the same arrays give the same bytes;
every file is written atomically (``cache.atomic_path``).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .cache import atomic_path
from .errors import DataError

FORMAT = "physface-dataset/1"
RESOLUTIONS = ("lr", "hr")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# --- files -------------------------------------------------------------------------------------


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> str:
    """Write an uncompressed .npz atomically with fixed timestamps, so the same arrays give
    the same bytes; returns the file's SHA-256."""
    with atomic_path(Path(path)) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_DATE), buffer.getvalue())
        digest = file_sha256(tmp)
    return digest


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 4 MiB blocks)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


def write_json(path: str | Path, value) -> None:
    """Write ``value`` as indented JSON, atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz (no pickles), loaded into memory."""
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def read_json(path: str | Path):
    """A JSON file's value, or None when it is missing or unreadable (a manifest that a
    killed run never wrote)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- manifests ---------------------------------------------------------------------------------


def manifest_path(out_dir: str | Path, sequence: str, resolution: str) -> Path:
    """Where the manifest of one sequence at one resolution lives."""
    return Path(out_dir) / sequence / f"{resolution}.json"


def frames_done(manifest: dict | None, frames: int) -> int:
    """Frames a manifest has committed: all when complete, else the end of its last chunk."""
    if not manifest:
        return 0
    if manifest.get("complete"):
        return frames
    chunks = manifest.get("chunks")
    return int(chunks[-1]["stop"]) if chunks else 0


def mean_seconds(manifest: dict, start: int, stop: int) -> float | None:
    """Mean simulation seconds per frame over [start, stop), without the cold frames (the
    first step of a process also loads Warp's kernels)."""
    cold = set(manifest.get("cold_frames", []))
    seconds = [s for f, s in enumerate(manifest["seconds"][start:stop], start) if f not in cold]
    return float(np.mean(seconds)) if seconds else None


# --- reading -----------------------------------------------------------------------------------


def read_dataset(path: str | Path) -> dict:
    """The folder's ``dataset.json``; DataError when the folder holds no dataset."""
    meta = read_json(Path(path) / "dataset.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(
            f"{path} holds no PhysFace dataset ({FORMAT}); generate one with "
            "`python -m physface dataset --out DIR`."
        )
    return meta


def read_rest(path: str | Path) -> dict[str, np.ndarray]:
    """The dataset's ``rest.npz``: neutral skin, embedded vertices, triangles, LR lattice."""
    file = Path(path) / "rest.npz"
    if not file.is_file():
        raise DataError(f"{path} has no rest.npz; generate the dataset again into it.")
    return read_npz(file)


def read_sequence(path: str | Path, name: str, resolution: str, partial: bool = True) -> dict:
    """Frames of one sequence at one resolution: skin (F, V, 3) float32 cm, residual (F,),
    iterations (F,), converged (F,), penetration_cm (F,), and for LR volume (F, N, 3).
    A sequence still being generated gives its committed frames when ``partial``."""
    folder = Path(path) / name
    manifest = read_json(folder / f"{resolution}.json")
    if manifest is None:
        raise DataError(f"No {resolution.upper()} frames of {name!r} in {path}.")
    if manifest.get("complete"):
        return read_npz(folder / manifest["file"])
    if not partial or not manifest["chunks"]:
        raise DataError(f"The {resolution.upper()} frames of {name!r} are not finished.")
    parts = [read_npz(folder / chunk["file"]) for chunk in manifest["chunks"]]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def read_controls(path: str | Path, name: str):
    """The sequence's controls as a Performance (see performances.Performance)."""
    from .performances import Performance

    return Performance.from_arrays(name, read_npz(Path(path) / name / "controls.npz"))


def dataset_status(out_dir: str | Path) -> list[dict]:
    """Per sequence and resolution of the folder's rig (LR, and HR when it has one):
    frames committed, total, complete, mean seconds per frame (from the manifests) and how
    many of the committed frames reached the solver's tolerance (``converged``)."""
    out_dir = Path(out_dir)
    meta = read_dataset(out_dir)
    rows = []
    for sequence in meta["sequences"]:
        for resolution in (r for r in RESOLUTIONS if r in meta["meshes"]):
            manifest = read_json(manifest_path(out_dir, sequence["name"], resolution)) or {}
            done = frames_done(manifest, sequence["frames"])
            converged = 0
            if done:
                frames = read_sequence(out_dir, sequence["name"], resolution)
                converged = int(np.count_nonzero(frames["converged"]))
            rows.append(
                {
                    "sequence": sequence["name"],
                    "resolution": resolution,
                    "done": done,
                    "frames": sequence["frames"],
                    "complete": bool(manifest.get("complete")),
                    "seconds_per_frame": mean_seconds(manifest, 0, done) if manifest else None,
                    "warnings": manifest.get("warnings", 0),
                    "converged": converged,
                }
            )
    return rows


__all__ = [
    "FORMAT",
    "RESOLUTIONS",
    "dataset_status",
    "file_sha256",
    "frames_done",
    "manifest_path",
    "mean_seconds",
    "read_controls",
    "read_dataset",
    "read_json",
    "read_npz",
    "read_rest",
    "read_sequence",
    "write_json",
    "write_npz",
]
