"""Muscles of the material space: editable definitions, centrelines and per-element fields.

Each muscle of ``data/muscles.toml`` is a path on the ICT template: anchor skin vertices
pushed inward along the skin normal by their depth, joined by a centripetal Catmull-Rom
spline (closed for a ring) and resampled every ``SAMPLE_SPACING_CM``. A query point gets
a weight from its offset to the closest centreline point, measured in the muscle's
elliptical cross-section (``thickness`` along the skin normal, ``width`` across the fibres
along the skin): 1 inside, a smoothstep falloff to 0 across a band ``falloff_cm`` wide.
Its fibre is the centreline's unit tangent there: origin → insertion for linear muscles (a
contraction pulls the insertion toward the origin), along the loop for rings.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import DataError
from .face_model import REGIONS, VERTEX_COUNT, FaceModel

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "muscles.toml"
KINDS = ("linear", "ring", "lid")
LIDS = ("upper", "lower")
LID_ACTIONS = ("close", "raise")
GROUPS = ("forehead", "brows", "eyes", "nose", "cheeks", "mouth", "chin", "neck")
SKIN_REGIONS = ("face", "head_neck")
SAMPLE_SPACING_CM = 0.1
FALLOFF_CM = 0.25  # width of the band where a weight falls from 1 to 0, beyond the section
CHUNK_POINTS = 1 << 18
CELL_CM = 0.5  # cell size for the nearest tangent of far (zero-weight) points

_REQUIRED_KEYS = (
    "kind",
    "anchors",
    "depths",
    "thickness",
    "max_contraction",
    "group",
    "action_units",
    "description",
)
_OPTIONAL_KEYS = ("width", "mirror", "origin_on_bone", "lids", "action")
_NAME = re.compile(r"[a-z][a-z0-9_]*?(_[LR])?")
_ACTION_UNIT = re.compile(r"AU\d{1,2}")


@dataclass(frozen=True)
class MuscleDefinition:
    """One muscle on the ICT template.

    anchors: skin vertex indices, origin → via points → insertion (linear) or around the
    loop (ring); depths: cm below the skin, one per anchor; thickness (along the skin
    normal) and width (across the fibres, along the skin) of the cross-section, cm;
    max_contraction: fibre shortening at full activation, a fraction in (0, 1).
    A "lid" muscle acts in the eyelid layer (``sim.eyelids``), not in the volume: anchors
    are the eye's medial and lateral canthus, ``lids`` the lids whose tarsal plates it
    moves, ``action`` "close" (toward the closing line) or "raise" (the upper lid up), and
    max_contraction the fraction of the lid's closing travel at full activation, in (0, 1].
    """

    name: str
    kind: str
    anchors: tuple[int, ...]
    depths: tuple[float, ...]
    thickness: float
    width: float
    max_contraction: float
    group: str
    action_units: tuple[str, ...]
    description: str
    origin_on_bone: bool = False
    lids: tuple[str, ...] = ()
    action: str = ""

    @property
    def side(self) -> str:
        """``"L"``, ``"R"`` (the subject's left, +x, and right) or ``"midline"``."""
        return self.name[-1] if self.name[-2:] in ("_L", "_R") else "midline"


# --- definitions --------------------------------------------------------------------------


@dataclass(frozen=True)
class MuscleEntry:
    """What the UI needs of a muscle, read without the face model (for registration)."""

    name: str
    group: str
    description: str
    action_units: tuple[str, ...]


def muscle_catalogue(path: str | Path | None = None) -> list[MuscleEntry]:
    """Names, groups, descriptions and action units of the muscle file, mirrors included,
    in the same order as ``load_muscle_definitions``; light enough for add-on registration."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DataError(f"The muscle file {path} cannot be read ({error}).") from error
    entries = []
    for name, table in document.items():
        units = tuple(table.get("action_units", ()))
        description = str(table.get("description", ""))
        entries.append(MuscleEntry(name, str(table.get("group", "")), description, units))
        if table.get("mirror"):
            mirrored = _mirrored_description(description)
            entries.append(MuscleEntry(name[:-2] + "_R", entries[-1].group, mirrored, units))
    return entries


def load_muscle_definitions(
    path: str | Path | None = None, face_model: FaceModel | None = None
) -> list[MuscleDefinition]:
    """The muscles of a TOML file (default ``data/muscles.toml``), in file order.

    A ``_L`` muscle with ``mirror = true`` is followed by its ``_R`` mirror image (anchors
    through ``mirror_vertex_map``; the face model is loaded when not given). Raises
    DataError naming the muscle and the problem.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DataError(f"The muscle file {path} cannot be read ({error}).") from error
    except tomllib.TOMLDecodeError as error:
        raise DataError(f"The muscle file {path} is not valid TOML: {error}.") from error
    vertex_count = face_model.vertex_count if face_model is not None else VERTEX_COUNT
    definitions: list[MuscleDefinition] = []
    mirrored: set[str] = set()
    for name, table in document.items():
        definition, mirror = _parse_muscle(name, table, vertex_count, path)
        definitions.append(definition)
        if mirror:
            mirrored.add(name)
    if mirrored:
        if face_model is None:
            from .face_model import load_face_model

            face_model = load_face_model()
        vertex_map = mirror_vertex_map(face_model)
        with_mirrors = []
        for definition in definitions:
            with_mirrors.append(definition)
            if definition.name in mirrored:
                with_mirrors.append(_mirrored(definition, vertex_map))
        definitions = with_mirrors
    seen: set[str] = set()
    for definition in definitions:
        if definition.name in seen:
            raise DataError(
                f"{path}: muscle {definition.name} is defined twice (a table and the mirror "
                f"of {definition.name[:-2]}_L); remove the table or set mirror = false."
            )
        seen.add(definition.name)
    if not definitions:
        raise DataError(f"The muscle file {path} defines no muscles.")
    return definitions


def _parse_muscle(
    name: str, table: object, vertex_count: int, path: Path
) -> tuple[MuscleDefinition, bool]:
    """Validate one TOML table -> (definition, mirror flag)."""

    def fail(problem: str) -> DataError:
        return DataError(f"{path}: muscle {name}: {problem}.")

    if not isinstance(table, dict):
        raise fail("is not a table; write it as [name] followed by its keys")
    if not _NAME.fullmatch(name):
        raise fail("the name must be lower case letters, digits and _, with _L/_R for pairs")
    unknown = sorted(set(table) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        allowed = ", ".join(_REQUIRED_KEYS + _OPTIONAL_KEYS)
        raise fail(f"unknown key {', '.join(unknown)} (allowed: {allowed})")
    missing = [key for key in _REQUIRED_KEYS if key not in table]
    if missing:
        raise fail(f"missing key {', '.join(missing)}")
    kind = table["kind"]
    if kind not in KINDS:
        raise fail(f"kind is {kind!r}; use one of {', '.join(KINDS)}")
    anchors = table["anchors"]
    if not isinstance(anchors, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in anchors
    ):
        raise fail("anchors must be a list of vertex indices (integers)")
    least = 3 if kind == "ring" else 2
    if len(anchors) < least:
        raise fail(f"{len(anchors)} anchor(s); a {kind} muscle needs at least {least}")
    if kind == "lid" and len(anchors) != 2:
        raise fail(f"{len(anchors)} anchors; a lid muscle names the two canthi, medial first")
    lids, action = table.get("lids", []), table.get("action", "")
    if kind == "lid":
        if not name.endswith(("_L", "_R")):
            raise fail("a lid muscle belongs to one eye: end its name in _L or _R")
        if not lids or not isinstance(lids, list) or not set(lids) <= set(LIDS):
            raise fail(f"lids is {lids!r}; give a list of {', '.join(LIDS)}")
        if action not in LID_ACTIONS:
            raise fail(f"action is {action!r}; use one of {', '.join(LID_ACTIONS)}")
    elif lids or action:
        raise fail('lids and action are for lid muscles (kind = "lid") only')
    for anchor in anchors:
        if not 0 <= anchor < vertex_count:
            raise fail(f"anchor vertex {anchor} is out of range (0 to {vertex_count - 1})")
        if not any(REGIONS[r][0] <= anchor < REGIONS[r][1] for r in SKIN_REGIONS):
            raise fail(f"anchor vertex {anchor} is not a skin vertex (face or head_neck)")
    if len(set(anchors)) < len(anchors):
        raise fail("an anchor vertex is repeated")
    depths = table["depths"]
    if not isinstance(depths, list) or not all(_is_number(d) for d in depths):
        raise fail("depths must be a list of numbers (cm below the skin)")
    if len(depths) != len(anchors):
        raise fail(f"{len(depths)} depths for {len(anchors)} anchors; give one per anchor")
    if any(d < 0 for d in depths):
        raise fail("a depth is negative; depths are cm below the skin")
    sizes = {"thickness": table["thickness"], "width": table.get("width", table["thickness"])}
    for key, value in sizes.items():
        if not _is_number(value) or value <= 0:
            raise fail(f"{key} is {value!r}; it must be a positive number of cm")
    contraction = table["max_contraction"]
    most = 1.0 if kind == "lid" else 1.0 - 1e-9  # a lid muscle may take the lid all the way
    if not _is_number(contraction) or not 0 < contraction <= most:
        raise fail(f"max_contraction is {contraction!r}; it must lie between 0 and 1")
    if table["group"] not in GROUPS:
        raise fail(f"group is {table['group']!r}; use one of {', '.join(GROUPS)}")
    units = table["action_units"]
    if not isinstance(units, list) or not all(
        isinstance(u, str) and _ACTION_UNIT.fullmatch(u) for u in units
    ):
        raise fail('action_units must be a list like ["AU12"]')
    if not isinstance(table["description"], str) or not table["description"].strip():
        raise fail("description must be a non-empty string")
    mirror = table.get("mirror", False)
    if not isinstance(mirror, bool):
        raise fail("mirror must be true or false")
    on_bone = table.get("origin_on_bone", False)
    if not isinstance(on_bone, bool):
        raise fail("origin_on_bone must be true or false")
    if on_bone and kind != "linear":
        raise fail("origin_on_bone is for linear muscles (a ring has no origin)")
    if mirror and not name.endswith("_L"):
        raise fail("mirror = true is for left muscles (name ending in _L) only")
    definition = MuscleDefinition(
        name=name,
        kind=kind,
        anchors=tuple(anchors),
        depths=tuple(float(d) for d in depths),
        thickness=float(sizes["thickness"]),
        width=float(sizes["width"]),
        max_contraction=float(contraction),
        group=table["group"],
        action_units=tuple(units),
        description=table["description"].strip(),
        origin_on_bone=on_bone,
        lids=tuple(lids),
        action=action,
    )
    return definition, mirror


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _mirrored_description(description: str) -> str:
    """A left muscle's description, said of the right side."""
    return re.sub(r"\bLeft\b", "Right", re.sub(r"\bleft\b", "right", description))


def _mirrored(definition: MuscleDefinition, vertex_map: np.ndarray) -> MuscleDefinition:
    """The right-side twin of a left muscle: anchors mirrored x -> -x, same order."""
    return replace(
        definition,
        name=definition.name[:-2] + "_R",
        anchors=tuple(int(vertex_map[a]) for a in definition.anchors),
        description=_mirrored_description(definition.description),
    )


def mirror_vertex_map(face_model: FaceModel) -> np.ndarray:
    """(V,) int32: the vertex nearest to each vertex's mirror image x -> -x.

    Searched within the vertex's region, or its left/right twin region, so a skin vertex
    maps to skin and a left eyeball vertex to the right eyeball.
    """
    from scipy.spatial import cKDTree

    positions = face_model.neutral
    mirror = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    vertex_map = np.arange(face_model.vertex_count, dtype=np.int32)
    for name, (start, stop) in REGIONS.items():
        if name == "teeth":  # the union of upper_teeth and lower_teeth
            continue
        twin = name.replace("left", "@").replace("right", "left").replace("@", "right")
        twin_start, twin_stop = REGIONS[twin]
        tree = cKDTree(positions[twin_start:twin_stop])
        _, nearest = tree.query(positions[start:stop] * mirror)
        vertex_map[start:stop] = nearest + twin_start
    return vertex_map


# --- centrelines --------------------------------------------------------------------------


def skin_vertex_normals(face_model: FaceModel) -> np.ndarray:
    """(V, 3) float32 outward unit normals of the skin (face, head_neck); zero elsewhere."""
    skin = np.concatenate([face_model.region(r) for r in SKIN_REGIONS])
    triangles = face_model.triangles(skin)
    p = face_model.neutral.astype(np.float64)
    face_normals = np.cross(
        p[triangles[:, 1]] - p[triangles[:, 0]], p[triangles[:, 2]] - p[triangles[:, 0]]
    )
    normals = np.zeros_like(p)
    for corner in range(3):
        np.add.at(normals, triangles[:, corner], face_normals)
    # Outward: the skin's normals point away from the head's centre on the whole.
    centre = p[skin].mean(axis=0)
    if np.einsum("ij,ij->", normals[skin], p[skin] - centre) < 0:
        normals = -normals
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    # The fan triangulation of quads is not mirror symmetric; average each normal with its
    # twin's mirror image where the mesh itself is symmetric, so L/R muscles are mirrors.
    twin = mirror_vertex_map(face_model)
    flip = np.array([-1.0, 1.0, 1.0])
    symmetric = np.linalg.norm(p[twin] * flip - p, axis=1) < 0.01  # 0.1 mm
    averaged = normals + normals[twin] * flip
    length = np.linalg.norm(averaged, axis=1, keepdims=True)
    use = symmetric & (length[:, 0] > 1e-6)
    normals[use] = averaged[use] / length[use]
    return normals.astype(np.float32)


@dataclass(frozen=True)
class _Centreline:
    """A resampled centreline: points, unit tangents and unit skin normals (K, 3) float64
    (orthogonal to the tangents); a ring's last point repeats its first."""

    points: np.ndarray
    tangents: np.ndarray
    normals: np.ndarray
    closed: bool


def muscle_paths(definitions: list[MuscleDefinition], face_model: FaceModel) -> list[np.ndarray]:
    """Each muscle's smooth centreline (K, 3) float32 cm, origin → insertion or around the
    loop (a ring's last point repeats its first), sampled every ~SAMPLE_SPACING_CM."""
    normals = skin_vertex_normals(face_model)
    return [
        _centreline(d, face_model.neutral, normals).points.astype(np.float32) for d in definitions
    ]


def _centreline(
    definition: MuscleDefinition, positions: np.ndarray, normals: np.ndarray
) -> _Centreline:
    anchors = np.asarray(definition.anchors)
    skin_normals = normals[anchors].astype(np.float64)
    if not np.all(np.linalg.norm(skin_normals, axis=1) > 0.5):
        raise DataError(f"muscle {definition.name}: an anchor vertex has no skin normal.")
    depths = np.asarray(definition.depths, dtype=np.float64)[:, None]
    control = positions[anchors].astype(np.float64) - depths * skin_normals
    closed = definition.kind == "ring"
    points, frame_normals = _catmull_rom(control, skin_normals, closed)
    # Resample at even arc length.
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    count = max(int(np.ceil(arc[-1] / SAMPLE_SPACING_CM)) + 1, 3)
    even = np.linspace(0.0, arc[-1], count)
    points = np.stack([np.interp(even, arc, points[:, i]) for i in range(3)], axis=1)
    frame_normals = np.stack([np.interp(even, arc, frame_normals[:, i]) for i in range(3)], 1)
    if closed:
        points[-1] = points[0]
        previous = np.roll(points[:-1], 1, axis=0)
        following = np.roll(points[:-1], -1, axis=0)
        tangents = following - previous
        tangents = np.vstack([tangents, tangents[:1]])
    else:
        tangents = np.gradient(points, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    frame_normals -= np.einsum("ij,ij->i", frame_normals, tangents)[:, None] * tangents
    frame_normals /= np.linalg.norm(frame_normals, axis=1, keepdims=True)
    return _Centreline(points, tangents, frame_normals, closed)


def _catmull_rom(
    control: np.ndarray, control_normals: np.ndarray, closed: bool, per_segment: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Centripetal Catmull-Rom through control points (C, 3) -> dense points and normals
    linearly interpolated per segment (S, 3); closed curves end where they start."""
    if closed:
        padded = np.vstack([control[-1:], control, control[:2]])
        normals = np.vstack([control_normals, control_normals[:1]])
    else:
        padded = np.vstack([2 * control[0] - control[1], control, 2 * control[-1] - control[-2]])
        normals = control_normals
    segments = len(padded) - 3
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    curve, curve_normals = [], []
    for i in range(segments):
        p0, p1, p2, p3 = padded[i : i + 4]
        # Knot intervals of the centripetal parametrisation (alpha = 1/2).
        k1 = max(np.linalg.norm(p1 - p0) ** 0.5, 1e-6)
        k2 = max(np.linalg.norm(p2 - p1) ** 0.5, 1e-6)
        k3 = max(np.linalg.norm(p3 - p2) ** 0.5, 1e-6)
        t0, t1, t2, t3 = 0.0, k1, k1 + k2, k1 + k2 + k3
        u = t1 + t * (t2 - t1)
        a1 = ((t1 - u) * p0 + (u - t0) * p1) / (t1 - t0)
        a2 = ((t2 - u) * p1 + (u - t1) * p2) / (t2 - t1)
        a3 = ((t3 - u) * p2 + (u - t2) * p3) / (t3 - t2)
        b1 = ((t2 - u) * a1 + (u - t0) * a2) / (t2 - t0)
        b2 = ((t3 - u) * a2 + (u - t1) * a3) / (t3 - t1)
        curve.append(((t2 - u) * b1 + (u - t1) * b2) / (t2 - t1))
        curve_normals.append((1 - t) * normals[i] + t * normals[i + 1])
    curve.append(padded[-2][None] if not closed else padded[1][None])
    curve_normals.append(normals[-1][None])
    return np.vstack(curve), np.vstack(curve_normals)


# --- fields -------------------------------------------------------------------------------


def muscle_fields(
    definitions: list[MuscleDefinition],
    face_model: FaceModel,
    points: np.ndarray,
    falloff_cm: float = FALLOFF_CM,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-muscle weights and fibre directions at query points (N, 3) cm (element centroids).

    Returns weights (M, N) float32 in [0, 1] and fibre_directions (M, N, 3) float32 unit
    vectors (where the weight is 0: the tangent near the closest centreline point, found
    per CELL_CM cell). Lid muscles have weight 0 everywhere.
    Points near a muscle are processed in chunks of CHUNK_POINTS; memory is the outputs,
    16 bytes per point and muscle, plus ~30 bytes per point and chunk-sized temporaries.
    """
    from scipy.spatial import cKDTree

    if not falloff_cm > 0:
        raise ValueError(f"falloff_cm must be positive, not {falloff_cm}")
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    if not np.isfinite(points).all():
        raise ValueError("muscle_fields: the query points contain NaN or infinite values")
    normals = skin_vertex_normals(face_model)
    weights = np.zeros((len(definitions), len(points)), dtype=np.float32)
    directions = np.empty((len(definitions), len(points), 3), dtype=np.float32)
    if not len(points):
        return weights, directions
    # Far points (weight 0) only need a nearest tangent: one per CELL_CM cell of the points.
    corner = points.min(axis=0)
    grid = np.floor((points - corner) / CELL_CM).astype(np.int64)
    shape = grid.max(axis=0) + 1
    cells, cell_of_point = np.unique(np.ravel_multi_index(grid.T, shape), return_inverse=True)
    del grid
    centres = corner + (np.stack(np.unravel_index(cells, shape), axis=1) + 0.5) * CELL_CM
    for m, definition in enumerate(definitions):
        if definition.kind == "lid":  # acts in the eyelid layer: no volume field
            directions[m] = (1.0, 0.0, 0.0)
            continue
        line = _centreline(definition, face_model.neutral, normals)
        samples = line.points[:-1] if line.closed else line.points
        sparse = np.arange(0, len(samples), max(int(round(CELL_CM / SAMPLE_SPACING_CM)), 1))
        _, nearest = cKDTree(samples[sparse]).query(centres)
        directions[m] = line.tangents[sparse[nearest]][cell_of_point]
        # Points that may have weight: those in cells that reach the muscle's bounding box.
        half_axes = (0.5 * definition.thickness, 0.5 * definition.width)
        reach = max(half_axes) + falloff_cm + SAMPLE_SPACING_CM + CELL_CM * 3**0.5 / 2
        low, high = samples.min(axis=0) - reach, samples.max(axis=0) + reach
        near_cells = np.all((centres >= low) & (centres <= high), axis=1)
        near = np.flatnonzero(near_cells[cell_of_point])
        tree = cKDTree(samples)
        for start in range(0, len(near), CHUNK_POINTS):
            chunk = near[start : start + CHUNK_POINTS]
            close = points[chunk].astype(np.float64)
            _, nearest = tree.query(close, workers=-1)
            w, d = _field_chunk(line, close, nearest, half_axes, falloff_cm)
            weights[m, chunk] = w
            directions[m, chunk] = d
    return weights, directions


def _field_chunk(
    line: _Centreline,
    points: np.ndarray,
    nearest: np.ndarray,
    half_axes: tuple[float, float],
    falloff_cm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (n,) and unit fibres (n, 3) for points (n, 3) with their nearest samples."""
    segments = len(line.points) - 1
    best_distance = np.full(len(points), np.inf)
    best_segment = np.zeros(len(points), dtype=np.int64)
    best_u = np.zeros(len(points))
    # The closest point lies on one of the two segments meeting at the nearest sample.
    for shift in (-1, 0):
        segment = nearest + shift
        if line.closed:
            segment %= segments
        else:
            segment = np.clip(segment, 0, segments - 1)
        a = line.points[segment]
        ab = line.points[segment + 1] - a
        u = np.einsum("ij,ij->i", points - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
        u = np.clip(u, 0.0, 1.0)
        distance = np.linalg.norm(points - (a + u[:, None] * ab), axis=1)
        better = distance < best_distance
        best_distance[better] = distance[better]
        best_segment[better] = segment[better]
        best_u[better] = u[better]
    s, u = best_segment, best_u[:, None]
    foot = line.points[s] + u * (line.points[s + 1] - line.points[s])
    tangent = (1 - u) * line.tangents[s] + u * line.tangents[s + 1]
    length = np.linalg.norm(tangent, axis=1, keepdims=True)
    tangent = np.where(length > 1e-9, tangent / np.maximum(length, 1e-12), line.tangents[s])
    normal = (1 - u) * line.normals[s] + u * line.normals[s + 1]
    normal -= np.einsum("ij,ij->i", normal, tangent)[:, None] * tangent
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    binormal = np.cross(tangent, normal)
    offset = points - foot
    across = np.einsum("ij,ij->i", offset, normal)
    sideways = np.einsum("ij,ij->i", offset, binormal)
    along = np.einsum("ij,ij->i", offset, tangent)  # non-zero only past a linear muscle's ends

    def radius(half_thickness: float, half_width: float) -> np.ndarray:
        """Offset in units of an elliptical section (a rounded cap past the ends)."""
        return np.sqrt(
            (across / half_thickness) ** 2
            + (sideways / half_width) ** 2
            + (along / half_thickness) ** 2
        )

    inner = radius(*half_axes)
    outer = radius(half_axes[0] + falloff_cm, half_axes[1] + falloff_cm)
    # Fraction of the way from the section's edge to the band's edge along the offset's ray.
    x = np.clip((inner - 1.0) * outer / np.maximum(inner - outer, 1e-12), 0.0, 1.0)
    weight = 1.0 - x * x * (3.0 - 2.0 * x)
    tangent = tangent.astype(np.float32)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return weight.astype(np.float32), tangent
