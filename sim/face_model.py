"""ICT-FaceKit face model importer (ICT Face Model Light, MIT licence).

Reads the FaceXModel folder exactly as published (or the ``FaceXModel.tar.xz`` archive of
it) into the project's own cached form: neutral positions (cm, +Y up, face toward +Z),
polygons with UVs, region vertex ranges, landmarks, 100 identity deltas and 53 expression
deltas. Region ranges are the table of the ICT-FaceKit README; landmarks come from the
model's ``vertex_indices.json``. The first import parses ~390 MB of OBJ text; the result
is cached as one ``.npz`` keyed by the content of every file the import reads and
``CODE_VERSION`` (not by where the folder is). ``check_data_folder`` reads every one of
those files as the import does and lists all problems at once.
"""

from __future__ import annotations

import json
import lzma
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .cache import (
    cache_root,
    content_key,
    file_fingerprint,
    read_arrays,
    read_or_rebuild,
    write_arrays,
)
from .data_paths import ICT_URL, DataFolder, find_data_folder
from .errors import DataError

CODE_VERSION = 1
VERTEX_COUNT = 26719
IDENTITY_COUNT = 100
LANDMARK_COUNT = 68
NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"

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

_RESTORE = f"restore it from the ICT-FaceKit repository ({ICT_URL})"


def _finite_floats(tokens: list[bytes]) -> None:
    """Raise ValueError unless every token is a finite number."""
    if not np.isfinite([float(token) for token in tokens]).all():
        raise ValueError("not finite")


def _bad_line(text: bytes, label: str, tag: bytes, check, what: str) -> DataError:
    """The error naming the first line starting with ``tag`` that ``check`` rejects."""
    for number, line in enumerate(text.split(b"\n"), start=1):
        if line.startswith(tag):
            try:
                check(line[len(tag) :].split())
            except ValueError:
                shown = line.decode("utf-8", "replace").strip()[:60]
                return DataError(
                    f"{label}, line {number}: {shown!r} is not {what}; the file is damaged. "
                    f"Replace it ({_RESTORE})."
                )
    return DataError(f"{label}: unreadable {tag.decode().strip()} lines; {_RESTORE}.")


def _vertex_block(text: bytes, label: str) -> np.ndarray:
    """Parse the ``v x y z`` lines of an OBJ (all before the first ``vt``/``f``) -> (V, 3)."""
    text = b"\n" + text  # a first line that is a vertex line counts too
    start = text.find(b"\nv ")
    if start < 0:
        raise DataError(f"{label}: no vertex lines; this is not an ICT FaceXModel OBJ file.")
    end = len(text)
    for tag in (b"\nvt ", b"\nvn ", b"\nf ", b"\nusemtl ", b"\ng "):
        found = text.find(tag, start)
        if found >= 0:
            end = min(end, found)
    block = text[start:end].replace(b"v ", b"  ")
    try:
        values = np.array(block.split(), dtype=np.float32)
        if not np.isfinite(values).all():
            raise ValueError("not finite")
    except ValueError:
        raise _bad_line(
            text[1:], label, b"v ", _finite_floats, "a vertex of three numbers"
        ) from None
    if values.size % 3 or values.size // 3 != VERTEX_COUNT:
        raise DataError(
            f"{label}: {values.size / 3:g} vertices where the ICT face model has {VERTEX_COUNT}; "
            "the file is truncated or from another model. Restore it from the ICT-FaceKit "
            "repository."
        )
    return values.reshape(-1, 3)


def _topology(text: bytes, label: str) -> dict[str, np.ndarray]:
    """UVs and polygons (v/vt corners) of the neutral mesh."""
    uv_lines = [line[3:] for line in text.split(b"\n") if line.startswith(b"vt ")]
    try:
        uvs = np.array(b" ".join(uv_lines).split(), dtype=np.float32).reshape(-1, 2)
    except ValueError:
        raise _bad_line(text, label, b"vt ", _finite_floats, "a UV of two numbers") from None
    corners_v, corners_t, starts = [], [], [0]
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.startswith(b"f "):
            continue
        try:
            for corner in line[2:].split():
                v, _, t = corner.partition(b"/")
                corners_v.append(int(v) - 1)
                corners_t.append(int(t.partition(b"/")[0] or b"0") - 1)
        except ValueError:
            shown = line.decode("utf-8", "replace").strip()[:60]
            raise DataError(
                f"{label}, line {number}: {shown!r} is not a polygon of vertex/UV numbers; "
                f"the file is damaged. Replace it ({_RESTORE})."
            ) from None
        starts.append(len(corners_v))
    if len(starts) < 2 or not uvs.size:
        raise DataError(f"{label}: no polygons or UVs; {_RESTORE}.")
    polygon_vertices = np.array(corners_v, dtype=np.int32)
    if polygon_vertices.min() < 0 or polygon_vertices.max() >= VERTEX_COUNT:
        raise DataError(f"{label}: polygon indices out of range; the file is damaged.")
    return {
        "polygon_vertices": polygon_vertices,
        "polygon_uvs": np.array(corners_t, dtype=np.int32),
        "polygon_starts": np.array(starts, dtype=np.int32),
        "uvs": uvs,
    }


# --- reading the published files ----------------------------------------------------------


def _label(source: DataFolder, name: str) -> str:
    """How messages name a source file: its path, or the archive and the member."""
    if source.ict_is_archive:
        return f"{name} in {source.ict_source}"
    return str(source.ict_source / name)


def _damaged_archive(source: DataFolder, error: BaseException) -> str:
    folder = source.ict_source.parent / "FaceXModel"
    return (
        f"{source.ict_source} is damaged ({type(error).__name__}: {error}); it cannot be "
        f"decompressed. Get a fresh copy: download the FaceXModel folder of {ICT_URL} (a "
        f"clone or 'Download ZIP') and put it at {folder}, which is read instead."
    )


def _missing_files(source: DataFolder, missing: list[str]) -> str:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return (
        f"{source.ict_source / missing[0]} is missing{more}. Restore the FaceXModel folder "
        f"from the ICT-FaceKit repository ({ICT_URL})."
    )


def _iter_source_files(
    source: DataFolder, wanted: set[str], problems: list[str] | None = None
) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, bytes) of the wanted FaceXModel files, from the folder or archive.

    A missing file or a damaged archive raises DataError; given ``problems``, it is added
    there instead (one line each) and every file that can be read is still yielded. The
    archive is decompressed to its end, so its checksums are verified."""

    def fail(message: str) -> None:
        if problems is None:
            raise DataError(message)
        problems.append(message)

    if not source.ict_is_archive:
        order = sorted(wanted, key=lambda n: (n != NEUTRAL_FILE, n))
        for position, name in enumerate(order):
            if position == 1:  # the neutral mesh is checked first, then every other file
                missing = [n for n in order[1:] if not (source.ict_source / n).is_file()]
                if missing:
                    fail(_missing_files(source, missing))
            path = source.ict_source / name
            if not path.is_file():
                if position == 0:
                    fail(_missing_files(source, [name]))
                continue
            try:
                data = path.read_bytes()
            except OSError as error:
                fail(f"{path} cannot be read ({error.strerror}); {_RESTORE}.")
                continue
            yield name, data
        return
    seen = set()
    try:
        with tarfile.open(source.ict_source, mode="r:xz") as archive:
            for member in archive:
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in seen:
                    seen.add(name)
                    yield name, archive.extractfile(member).read()
            while archive.fileobj.read(1 << 20):  # the end of the stream and its checksums
                pass
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as error:
        fail(_damaged_archive(source, error))
        return
    missing = sorted(wanted - seen)
    if missing:
        fail(
            f"{source.ict_source} lacks {', '.join(missing[:5])}"
            f"{' …' if len(missing) > 5 else ''}; get a fresh copy of the FaceXModel folder "
            f"from {ICT_URL}."
        )


def _parse_index(data: bytes, label: str) -> dict:
    """The index file's expression names and landmarks, checked."""
    try:
        index = json.loads(data)
        names = index["expressions"]
        landmarks = np.array(index["idx_to_landmark_verts"], dtype=np.int64)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("'expressions' is not a list of names")
        if (
            landmarks.shape != (LANDMARK_COUNT,)
            or not ((landmarks >= 0) & (landmarks < VERTEX_COUNT)).all()
        ):
            raise ValueError(f"'idx_to_landmark_verts' is not {LANDMARK_COUNT} vertex indices")
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{label} is not the ICT-FaceKit vertex index file ({error}); {_RESTORE}."
        ) from error
    return index


def _read_index_file(source: DataFolder) -> dict:
    for name, data in _iter_source_files(source, {INDEX_FILE}):
        return _parse_index(data, _label(source, name))
    raise AssertionError("unreachable")


def _wanted_files(expression_names: list[str]) -> set[str]:
    """Every OBJ the import reads: the neutral mesh, 100 identities, the expressions."""
    identities = [f"identity{i:03d}" for i in range(IDENTITY_COUNT)]
    return {NEUTRAL_FILE, *(f"{n}.obj" for n in [*identities, *expression_names])}


def import_face_model(source: DataFolder) -> FaceModel:
    """Parse the published FaceXModel files (no cache). Takes ~10–30 s on 2 cores."""
    index = _read_index_file(source)
    expression_names = list(index["expressions"])
    identity_names = [f"identity{i:03d}" for i in range(IDENTITY_COUNT)]
    shapes: dict[str, np.ndarray] = {}
    topology = None
    for name, data in _iter_source_files(source, _wanted_files(expression_names)):
        shapes[name[:-4]] = _vertex_block(data, _label(source, name))
        if name == NEUTRAL_FILE:
            topology = _topology(data, _label(source, name))
    neutral = shapes.pop(NEUTRAL_FILE[:-4])
    return FaceModel(
        neutral=neutral,
        landmarks=np.array(index["idx_to_landmark_verts"], dtype=np.int32),
        identity_deltas=np.stack([shapes[n] - neutral for n in identity_names]),
        expression_deltas=np.stack([shapes[n] - neutral for n in expression_names]),
        expression_names=expression_names,
        **topology,
    )


def check_data_folder(data_folder: str | Path | None = None) -> list[str]:
    """Every problem of the data folder, one line each ([] when it is sound).

    Reads each file the face model import reads, as it reads it (the index file, the
    neutral mesh with its polygons and UVs, every identity and expression OBJ, the whole
    archive), and carries on past a problem to report the rest."""
    try:
        source = find_data_folder(data_folder)
    except DataError as error:
        return [str(error)]
    problems: list[str] = []
    try:
        expression_names = list(_read_index_file(source)["expressions"])
    except DataError as error:
        problems.append(str(error))
        expression_names = []
    for name, data in _iter_source_files(source, _wanted_files(expression_names), problems):
        try:
            _vertex_block(data, _label(source, name))
            if name == NEUTRAL_FILE:
                _topology(data, _label(source, name))
        except DataError as error:
            problems.append(str(error))
    return list(dict.fromkeys(problems))


# --- the cache ----------------------------------------------------------------------------


def _source_key(source: DataFolder) -> str:
    """The content of every file the import reads, and CODE_VERSION."""
    if source.ict_is_archive:
        inputs = [[source.ict_source.name, *file_fingerprint(source.ict_source)]]
    else:
        names = [INDEX_FILE, *sorted(_wanted_files(list(_read_index_file(source)["expressions"])))]
        missing = [n for n in names if not (source.ict_source / n).is_file()]
        if missing:
            raise DataError(_missing_files(source, missing))
        inputs = [[name, *file_fingerprint(source.ict_source / name)] for name in names]
    return content_key("face_model", CODE_VERSION, inputs)


def face_model_key(data_folder: str | Path | None = None) -> str:
    """Cache key of the face model in a data folder: the content of every file the import
    reads and CODE_VERSION. The same files reached by another path give the same key."""
    return _source_key(find_data_folder(data_folder))


_ARRAY_FIELDS = tuple(f.name for f in fields(FaceModel))


def _read_cached(path: Path) -> FaceModel:
    values = read_arrays(path, _ARRAY_FIELDS)
    if values["neutral"].shape != (VERTEX_COUNT, 3):
        raise ValueError(f"neutral has shape {values['neutral'].shape}")
    values["expression_names"] = [str(n) for n in values["expression_names"]]
    return FaceModel(**values)


def _write_cached(path: Path, model: FaceModel) -> None:
    write_arrays(path, {name: getattr(model, name) for name in _ARRAY_FIELDS})


def load_face_model(
    data_folder: str | Path | None = None,
    use_cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> FaceModel:
    """The face model from the data folder, through the on-disk cache (reload < 1 s).

    A damaged cache entry is rebuilt, saying so through ``log(line)`` (default: stderr)."""
    source = find_data_folder(data_folder)
    if not use_cache:
        return import_face_model(source)
    path = cache_root() / "face_model" / f"ict_{_source_key(source)}.npz"
    return read_or_rebuild(
        path, _read_cached, lambda: import_face_model(source), _write_cached, "face model", log
    )
