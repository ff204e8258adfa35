"""ICT-FaceKit face model importer (ICT Face Model Light, MIT licence).

Reads the FaceXModel folder exactly as published (or the ``FaceXModel.tar.xz`` archive of
it) into the project's own cached form: neutral positions (cm, +Y up, face toward +Z),
polygons with UVs, region vertex ranges, landmarks, 100 identity deltas and 53 expression
deltas. Region ranges are the table of the ICT-FaceKit README; landmarks come from the
model's ``vertex_indices.json``. The first import parses ~390 MB of OBJ text; the result
is cached as one ``.npz`` keyed by the source file and ``CODE_VERSION``.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .cache import atomic_path, cache_root, content_key, file_fingerprint
from .data_paths import DataFolder, find_data_folder
from .errors import DataError

CODE_VERSION = 1
VERTEX_COUNT = 26719
IDENTITY_COUNT = 100

# Vertex ranges [start, stop) of the ICT-FaceKit README's "Face Model Topology" table.
REGIONS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "upper_teeth": (17039, 19247),
    "lower_teeth": (19247, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
    "lacrimal_left": (24591, 24795),
    "lacrimal_right": (24795, 24999),
    "eye_blend_left": (24999, 25023),
    "eye_blend_right": (25023, 25047),
    "eye_occlusion_left": (25047, 25199),
    "eye_occlusion_right": (25199, 25351),
    "eyelashes_left": (25351, 26035),
    "eyelashes_right": (26035, 26719),
}
# Jawline vertices of the README (right and left extended jawlines, chin to ear).
JAWLINE_RIGHT = (1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199,
                 801, 1447, 800)  # fmt: skip
JAWLINE_LEFT = (3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466,
                3490, 3493, 3496, 3498)  # fmt: skip


@dataclass
class FaceModel:
    """The ICT face model as arrays. V = 26,719 vertices, P polygons, K polygon corners.

    neutral (V, 3) float32 cm; polygon_vertices (K,) int32 and polygon_uvs (K,) int32 index
    vertices and ``uvs`` (T, 2) float32 per corner; polygon_starts (P + 1,) int32 offsets;
    landmarks (68,) int32 Multi-PIE vertex indices; identity_deltas (100, V, 3) and
    expression_deltas (E, V, 3) float32 cm, each a shape minus the neutral.
    """

    neutral: np.ndarray
    polygon_vertices: np.ndarray
    polygon_uvs: np.ndarray
    polygon_starts: np.ndarray
    uvs: np.ndarray
    landmarks: np.ndarray
    identity_deltas: np.ndarray
    expression_deltas: np.ndarray
    expression_names: list[str]

    @property
    def vertex_count(self) -> int:
        return len(self.neutral)

    def region(self, name: str) -> np.ndarray:
        """Vertex indices (int32) of a README region, e.g. ``face`` or ``lower_teeth``."""
        start, stop = REGIONS[name]
        return np.arange(start, stop, dtype=np.int32)

    def polygons(self) -> list[np.ndarray]:
        """Polygons as a list of vertex-index arrays (for code that needs them one by one)."""
        return np.split(self.polygon_vertices, self.polygon_starts[1:-1])

    def triangles(self, vertex_subset: np.ndarray | None = None) -> np.ndarray:
        """Fan triangulation (F, 3) int32 of the polygons whose vertices all lie in a subset."""
        counts = np.diff(self.polygon_starts)
        starts = self.polygon_starts[:-1]
        keep = np.ones(len(counts), dtype=bool)
        if vertex_subset is not None:
            inside = np.zeros(self.vertex_count, dtype=bool)
            inside[vertex_subset] = True
            corner_inside = inside[self.polygon_vertices]
            keep = np.logical_and.reduceat(corner_inside, starts)
        tris = []
        for fan in range(1, counts.max() - 1):
            use = keep & (counts > fan + 1)
            s = starts[use]
            pv = self.polygon_vertices
            tris.append(np.stack([pv[s], pv[s + fan], pv[s + fan + 1]], axis=1))
        return np.concatenate(tris).astype(np.int32)

    def identity_shape(self, coefficients: np.ndarray) -> np.ndarray:
        """Neutral plus identity modes weighted by ``coefficients`` (≤ 100,) -> (V, 3) cm."""
        coefficients = np.asarray(coefficients, dtype=np.float32)
        modes = self.identity_deltas[: len(coefficients)]
        return self.neutral + np.tensordot(coefficients, modes, axes=1).astype(np.float32)


# --- OBJ parsing --------------------------------------------------------------------------


def _vertex_block(text: bytes, name: str) -> np.ndarray:
    """Parse the ``v x y z`` lines of an OBJ (all before the first ``vt``/``f``) -> (V, 3)."""
    text = b"\n" + text  # a first line that is a vertex line counts too
    start = text.find(b"\nv ")
    if start < 0:
        raise DataError(f"{name}: no vertex lines; this is not an ICT FaceXModel OBJ file.")
    end = len(text)
    for tag in (b"\nvt ", b"\nvn ", b"\nf ", b"\nusemtl ", b"\ng "):
        found = text.find(tag, start)
        if found >= 0:
            end = min(end, found)
    block = text[start:end].replace(b"v ", b"  ")
    values = np.array(block.split(), dtype=np.float32)
    if values.size % 3 or values.size // 3 != VERTEX_COUNT:
        raise DataError(
            f"{name}: {values.size / 3:g} vertices where the ICT face model has {VERTEX_COUNT}; "
            "the file is truncated or from another model. Restore it from the ICT-FaceKit "
            "repository."
        )
    return values.reshape(-1, 3)


def _topology(text: bytes, name: str) -> dict[str, np.ndarray]:
    """UVs and polygons (v/vt corners) of the neutral mesh."""
    uv_lines = [line[3:] for line in text.split(b"\n") if line.startswith(b"vt ")]
    uvs = np.array(b" ".join(uv_lines).split(), dtype=np.float32).reshape(-1, 2)
    corners_v, corners_t, starts = [], [], [0]
    for line in text.split(b"\n"):
        if not line.startswith(b"f "):
            continue
        for corner in line[2:].split():
            v, _, t = corner.partition(b"/")
            corners_v.append(int(v) - 1)
            corners_t.append(int(t.partition(b"/")[0] or b"0") - 1)
        starts.append(len(corners_v))
    if len(starts) < 2 or not uvs.size:
        raise DataError(f"{name}: no polygons or UVs; restore it from the ICT-FaceKit repository.")
    polygon_vertices = np.array(corners_v, dtype=np.int32)
    if polygon_vertices.min() < 0 or polygon_vertices.max() >= VERTEX_COUNT:
        raise DataError(f"{name}: polygon indices out of range; the file is damaged.")
    return {
        "polygon_vertices": polygon_vertices,
        "polygon_uvs": np.array(corners_t, dtype=np.int32),
        "polygon_starts": np.array(starts, dtype=np.int32),
        "uvs": uvs,
    }


def _iter_source_files(source: DataFolder, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, bytes) of the wanted FaceXModel files, from the folder or archive."""
    if not source.ict_is_archive:
        order = sorted(wanted, key=lambda n: (n != "generic_neutral_mesh.obj", n))
        for position, name in enumerate(order):
            if position == 1:  # the neutral mesh is checked first, then every other file
                missing = [n for n in order[1:] if not (source.ict_source / n).is_file()]
                if missing:
                    raise DataError(
                        f"{source.ict_source / missing[0]} is missing"
                        f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}. "
                        "Restore the FaceXModel folder from the ICT-FaceKit repository."
                    )
            path = source.ict_source / name
            if not path.is_file():
                raise DataError(
                    f"{path} is missing. Restore the FaceXModel folder from the ICT-FaceKit "
                    "repository."
                )
            yield name, path.read_bytes()
        return
    seen = set()
    try:
        with tarfile.open(source.ict_source, mode="r:xz") as archive:
            for member in archive:
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in seen:
                    seen.add(name)
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(
            f"{source.ict_source} cannot be read ({error}); the archive is truncated or "
            "damaged. Replace it with the FaceXModel folder of the ICT-FaceKit repository."
        ) from error
    missing = sorted(wanted - seen)
    if missing:
        raise DataError(
            f"{source.ict_source} lacks {', '.join(missing[:5])}"
            f"{' …' if len(missing) > 5 else ''}; restore the FaceXModel folder from the "
            "ICT-FaceKit repository."
        )


def _read_index_file(source: DataFolder) -> dict:
    for name, data in _iter_source_files(source, {"vertex_indices.json"}):
        try:
            index = json.loads(data)
            index["expressions"], index["idx_to_landmark_verts"]  # noqa: B018
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(
                f"{name} is not the ICT-FaceKit vertex index file ({error}); restore it from "
                "the ICT-FaceKit repository."
            ) from error
        return index
    raise AssertionError("unreachable")


def import_face_model(source: DataFolder) -> FaceModel:
    """Parse the published FaceXModel files (no cache). Takes ~10–30 s on 2 cores."""
    index = _read_index_file(source)
    expression_names = list(index["expressions"])
    identity_names = [f"identity{i:03d}" for i in range(IDENTITY_COUNT)]
    wanted = {f"{n}.obj" for n in ["generic_neutral_mesh", *identity_names, *expression_names]}
    shapes: dict[str, np.ndarray] = {}
    topology = None
    for name, data in _iter_source_files(source, wanted):
        shapes[name[:-4]] = _vertex_block(data, name)
        if name == "generic_neutral_mesh.obj":
            topology = _topology(data, name)
    neutral = shapes.pop("generic_neutral_mesh")
    model = FaceModel(
        neutral=neutral,
        landmarks=np.array(index["idx_to_landmark_verts"], dtype=np.int32),
        identity_deltas=np.stack([shapes[n] - neutral for n in identity_names]),
        expression_deltas=np.stack([shapes[n] - neutral for n in expression_names]),
        expression_names=expression_names,
        **topology,
    )
    return model


def face_model_key(data_folder: str | Path | None = None) -> str:
    """Cache key of the face model in a data folder: its source file and CODE_VERSION."""
    source = find_data_folder(data_folder)
    fingerprint = file_fingerprint(
        source.ict_source if source.ict_is_archive else source.ict_source / "vertex_indices.json"
    )
    return content_key("face_model", CODE_VERSION, str(source.ict_source), fingerprint)


def load_face_model(data_folder: str | Path | None = None, use_cache: bool = True) -> FaceModel:
    """The face model from the data folder, through the on-disk cache (reload < 1 s)."""
    source = find_data_folder(data_folder)
    path = cache_root() / "face_model" / f"ict_{face_model_key(data_folder)}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path) as stored:
                values = {f.name: stored[f.name] for f in fields(FaceModel)}
            values["expression_names"] = [str(n) for n in values["expression_names"]]
            return FaceModel(**values)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    model = import_face_model(source)
    if use_cache:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{f.name: np.asarray(getattr(model, f.name)) for f in fields(model)})
    return model
