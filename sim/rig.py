"""The rig: the canonical material space assembled for one preset, built once and cached.

A rig holds the anatomy (hinge, bone labels), the LR lattice and the HR conforming mesh
with their muscle weights and fibres, the render skin's barycentric embedding in each
mesh, the rigid parts (teeth, eyeballs, gums) and the network's neighbour tables. It is
keyed by a hash of the face model file, the preset and the source code of every module
that builds it, so editing the muscle file or the code rebuilds instead of reading a
stale rig.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .anatomy import Anatomy, build_anatomy
from .cache import (
    atomic_path,
    cache_root,
    content_key,
    read_arrays,
    read_or_rebuild,
    write_arrays,
)
from .errors import DataError
from .eyelids import LidRig, build_lid_rig
from .face_model import REGIONS, FaceModel, load_face_model
from .lattice import ClipRegion, LipZone, build_lattice, skin_lip_sides
from .simmesh import JAW, LIP_LOWER, LIP_NONE, LIP_UPPER, SKULL, SimMesh
from .tetmesh import embed_points
from .tissue import TISSUE_REGIONS, build_tissue_surface

_SOURCES = ("anatomy", "eyelids", "face_model", "hr_mesh", "inside", "lattice", "muscles",
            "neighbours", "rig", "simmesh", "tetmesh", "tissue")  # fmt: skip
EMBEDDED_REGIONS = (*TISSUE_REGIONS, "lacrimal_left", "lacrimal_right", "eye_blend_left",
                    "eye_blend_right", "eye_occlusion_left", "eye_occlusion_right",
                    "eyelashes_left", "eyelashes_right")  # fmt: skip
SKULL_RIGID_REGIONS = ("upper_teeth", "eyeball_left", "eyeball_right")
JAW_RIGID_REGIONS = ("lower_teeth",)


@dataclass(frozen=True)
class RigPreset:
    """Resolution settings: LR lattice spacing (cm) and HR/LR element-count ratio."""

    name: str
    lr_spacing_cm: float
    hr_ratio: float = 25.0
    build_hr: bool = True


PRESETS = {
    "tiny": RigPreset("tiny", lr_spacing_cm=2.4),
    "default": RigPreset("default", lr_spacing_cm=1.15),
    "paper": RigPreset("paper", lr_spacing_cm=0.6, hr_ratio=26.0),
}


@dataclass
class MeshMuscles:
    """Sparse muscle fields on one mesh: (muscle, element, weight, fibre) for every nonzero
    weight; ``muscle`` (K,) int16, ``element`` (K,) int32, ``weight`` (K,) float32 in (0, 1],
    ``fibre`` (K, 3) float32 unit directions (origin → insertion)."""

    muscle: np.ndarray
    element: np.ndarray
    weight: np.ndarray
    fibre: np.ndarray


@dataclass
class Embedding:
    """Barycentric embedding of ICT vertices ``vertices`` (P,) in a mesh: ``elements``
    (P,) int32, ``weights`` (P, 4) float32 (negative entries extrapolate outside points)."""

    vertices: np.ndarray
    elements: np.ndarray
    weights: np.ndarray


@dataclass
class Rig:
    """Everything the simulator, the skin stages and the network need about one head at
    one preset: no simulator or worker reads the face model (a morphed identity's rig
    carries its own rest positions, teeth and lips)."""

    preset: str
    key: str
    muscle_names: list[str]
    anatomy: Anatomy
    lr: SimMesh
    lr_muscles: MeshMuscles
    lr_skin: Embedding
    skull_vertices: np.ndarray  # (A,) int32 ICT vertices rigid with the skull (also the
    # back of the head and the neck outside the simulated region)
    jaw_vertices: np.ndarray  # (B,) int32 ICT vertices rigid with the jaw
    ict_rest_positions: np.ndarray  # (V, 3) float32 cm: every ICT vertex at rest
    max_contractions: np.ndarray  # (M,) float32 per muscle_names: c of λ(a) = 1 − c·a
    lip_zone: LipZone  # where the lips are cut apart (HR lip contact surfaces)
    lids: LidRig | None = None  # the eyelid membranes (sim.eyelids), on every skin stage
    hr: SimMesh | None = None
    hr_muscles: MeshMuscles | None = None
    hr_skin: Embedding | None = None
    lr_knn: np.ndarray | None = None  # (N, 5) int32
    lr_knn_distances: np.ndarray | None = None
    # (P, 20) int32 into LR vertices, one row per hr_skin vertex; distances (P, 20) cm
    hr_skin_lr_neighbours: np.ndarray | None = None
    hr_skin_lr_distances: np.ndarray | None = None
    build_seconds: dict[str, float] = field(default_factory=dict)


def code_version() -> str:
    """Hash of the source of every module that builds a rig, and of the muscle file."""
    here = Path(__file__).parent
    parts = [
        (here / f"{name}.py").read_bytes().hex()
        for name in _SOURCES
        if (here / f"{name}.py").exists()
    ]
    parts.append((here / "data" / "muscles.toml").read_bytes().hex())
    return content_key(*parts)


# Barycentric sample points per element: centroid, four points toward the corners, and
# the six edge midpoints pulled toward the centroid. A muscle's weight in an element is its
# mean over the samples (the covered fraction), so thin muscles keep their elements on a
# coarse lattice instead of vanishing between centroids.
_SAMPLES = np.array(
    [[0.25, 0.25, 0.25, 0.25]]
    + [[0.55 if i == j else 0.15 for j in range(4)] for i in range(4)]
    + [[0.4 if k in (i, j) else 0.1 for k in range(4)] for i in range(4) for j in range(i + 1, 4)],
    dtype=np.float32,
)


ORIGIN_RADIUS_CM = 0.6  # the patch of bone a muscle's origin holds


def attach_muscle_origins(definitions, model: FaceModel, mesh: SimMesh, anatomy) -> SimMesh:
    """The mesh with the free nodes within ``ORIGIN_RADIUS_CM`` of each bone-fixed muscle
    origin (``origin_on_bone`` in muscles.toml; the nearest free node when none is that
    close) labelled with that bone, skull or jaw: they move with it."""
    from dataclasses import replace

    from .muscles import muscle_paths
    from .simmesh import FREE, JAW, SKULL

    labels = mesh.node_labels.copy()
    for definition, path in zip(definitions, muscle_paths(definitions, model), strict=True):
        if not definition.origin_on_bone:
            continue
        origin = path[0].astype(np.float64)
        bone, other = (JAW, SKULL) if anatomy.in_jaw_region(origin[None])[0] else (SKULL, JAW)
        # never a node sharing an element with the other bone: no element driven by both
        beside_other = np.zeros(len(labels), dtype=bool)
        beside_other[mesh.tets[(labels[mesh.tets] == other).any(axis=1)].ravel()] = True
        free = np.flatnonzero((labels == FREE) & ~beside_other)
        distance = np.linalg.norm(mesh.rest_positions[free] - origin, axis=1)
        near = free[distance <= ORIGIN_RADIUS_CM]
        if not len(near):
            near = free[[int(np.argmin(distance))]]
        labels[near] = bone
    return replace(mesh, node_labels=labels)


def _mesh_muscles(definitions, model: FaceModel, mesh: SimMesh, samples: int = 11) -> MeshMuscles:
    """Muscle weights (covered fraction) and fibres of every element of a mesh."""
    from .muscles import muscle_fields, muscle_paths

    bary = _SAMPLES[:samples]
    m_count, e_count = len(definitions), mesh.element_count
    element_weight = np.zeros((m_count, e_count), dtype=np.float32)
    element_fibre = np.zeros((m_count, e_count, 3), dtype=np.float32)
    for start in range(0, e_count, 40000):  # bounded memory on HR meshes
        block = slice(start, min(start + 40000, e_count))
        corners = mesh.rest_positions[mesh.tets[block]]  # (B, 4, 3)
        points = np.einsum("sk,bkd->bsd", bary, corners).reshape(-1, 3)
        weights, fibres = muscle_fields(definitions, model, points)
        weights = weights.reshape(m_count, -1, len(bary))
        fibres = fibres.reshape(m_count, -1, len(bary), 3)
        element_weight[:, block] = weights.mean(axis=2)
        element_fibre[:, block] = np.einsum("mes,mesd->med", weights + 1e-6, fibres)
    # Every muscle keeps the elements its centreline passes through, however coarse the mesh.
    for m, path in enumerate(muscle_paths(definitions, model)):
        if definitions[m].kind == "lid":
            continue
        hit, _ = embed_points(path, mesh.rest_positions, mesh.tets)
        element_weight[m, hit] = np.maximum(element_weight[m, hit], 0.25)
    element_fibre /= np.linalg.norm(element_fibre, axis=2, keepdims=True) + 1e-12
    muscle, element = np.nonzero(element_weight > 1e-3)
    return MeshMuscles(
        muscle=muscle.astype(np.int16),
        element=element.astype(np.int32),
        weight=element_weight[muscle, element].astype(np.float32),
        fibre=element_fibre[muscle, element].astype(np.float32),
    )


def embed_skin(mesh: SimMesh, model: FaceModel, vertices: np.ndarray) -> Embedding:
    """Embed ICT vertices in a mesh, each only in elements of its own lip side
    (``skin_lip_sides``): lip skin in its lip's elements, the rest in unlabelled ones, so
    that skin just past a mouth corner follows the uncut tissue there and not one lip."""
    points = model.neutral[vertices]
    side = skin_lip_sides(model, vertices)
    elements = np.empty(len(points), dtype=np.int32)
    weights = np.empty((len(points), 4), dtype=np.float32)
    for point_side in (LIP_NONE, LIP_UPPER, LIP_LOWER):
        chosen = side == point_side
        if not chosen.any():
            continue
        allowed = np.flatnonzero(mesh.lip_side == point_side)
        e, w = embed_points(points[chosen], mesh.rest_positions, mesh.tets[allowed])
        elements[chosen], weights[chosen] = allowed[e], w
    return Embedding(vertices.astype(np.int32), elements, weights)


def _region_vertices(model: FaceModel, regions) -> np.ndarray:
    return np.concatenate([model.region(r) for r in regions]).astype(np.int32)


def build_rig(preset: str | RigPreset, model: FaceModel | None = None, progress=None) -> Rig:
    """Build a rig from scratch (no cache). ``progress(stage: str)`` is called per stage."""
    from .muscles import load_muscle_definitions

    preset = PRESETS[preset] if isinstance(preset, str) else preset
    report = progress or (lambda stage: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str):
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    report("face model")
    model = model or load_face_model()
    surface = build_tissue_surface(model)
    anatomy = build_anatomy(model)
    definitions = load_muscle_definitions(face_model=model)
    lap("face model, tissue, anatomy")
    report("LR lattice")
    lr = build_lattice(model, surface, anatomy, preset.lr_spacing_cm)
    lr = attach_muscle_origins(definitions, model, lr, anatomy)
    lap("LR lattice")
    report("LR muscles")
    lr_muscles = _mesh_muscles(definitions, model, lr)
    candidates = _region_vertices(model, EMBEDDED_REGIONS)
    in_clip = ClipRegion().contains(model.neutral[candidates])
    embedded, outside_clip = candidates[in_clip], candidates[~in_clip]
    lr_skin = embed_skin(lr, model, embedded)
    lap("LR muscles and embedding")

    gums = model.region("gums_tongue")
    gum_in_jaw = anatomy.in_jaw_region(model.neutral[gums])
    rig = Rig(
        preset=preset.name,
        key="",
        muscle_names=[d.name for d in definitions],
        anatomy=anatomy,
        lr=lr,
        lr_muscles=lr_muscles,
        lr_skin=lr_skin,
        skull_vertices=np.concatenate(
            [_region_vertices(model, SKULL_RIGID_REGIONS), gums[~gum_in_jaw], outside_clip]
        ),
        jaw_vertices=np.concatenate([_region_vertices(model, JAW_RIGID_REGIONS), gums[gum_in_jaw]]),
        ict_rest_positions=model.neutral.astype(np.float32),
        max_contractions=np.array([d.max_contraction for d in definitions], dtype=np.float32),
        lip_zone=LipZone.from_model(model),
        lids=build_lid_rig(model, definitions),
    )
    if preset.build_hr:
        from .hr_mesh import build_hr_mesh
        from .neighbours import hr_skin_lr_neighbours, lr_geodesic_knn

        report("HR mesh")
        rig.hr = build_hr_mesh(model, surface, anatomy, lr.element_count, ratio=preset.hr_ratio)
        rig.hr = attach_muscle_origins(definitions, model, rig.hr, anatomy)
        lap("HR mesh")
        report("HR muscles")
        rig.hr_muscles = _mesh_muscles(definitions, model, rig.hr, samples=5)
        rig.hr_skin = embed_skin(rig.hr, model, embedded)
        lap("HR muscles and embedding")
        report("neighbour tables")
        rig.lr_knn, rig.lr_knn_distances = lr_geodesic_knn(lr, k=5)
        rig.hr_skin_lr_neighbours, rig.hr_skin_lr_distances = hr_skin_lr_neighbours(
            rig.hr.rest_positions,
            rig.hr.tets,
            model.neutral[embedded],
            rig.hr_skin.elements,
            lr.rest_positions,
            k=20,
        )
        lap("neighbour tables")
    rig.build_seconds = seconds
    return rig


# --- storage --------------------------------------------------------------------------------

_NESTED = {"anatomy": Anatomy, "lr": SimMesh, "hr": SimMesh, "lr_muscles": MeshMuscles,
           "hr_muscles": MeshMuscles, "lr_skin": Embedding, "hr_skin": Embedding,
           "lip_zone": LipZone, "lids": LidRig}  # fmt: skip


def save_rig(rig: Rig, path: Path) -> None:
    """Write a rig as one .npz (atomically)."""
    with atomic_path(path) as tmp:
        write_arrays(tmp, rig_arrays(rig))


def rig_arrays(rig: Rig) -> dict[str, np.ndarray]:
    """A rig as named arrays (``read_rig`` reads them back)."""
    arrays: dict[str, np.ndarray] = {}
    for f in fields(rig):
        value = getattr(rig, f.name)
        if value is None:
            continue
        if f.name in _NESTED:
            for g in fields(value):
                arrays[f"{f.name}.{g.name}"] = np.asarray(getattr(value, g.name))
        elif f.name == "build_seconds":
            arrays[f.name] = np.array([f"{k}={v}" for k, v in value.items()])
        else:
            arrays[f.name] = np.asarray(value)
    return arrays


def _scalar(value: np.ndarray):
    """A stored 0-d array back as the Python number it was."""
    return value.item() if value.ndim == 0 else value


def read_rig(path: Path) -> Rig:
    """Read a rig written by save_rig (every array in full: a damaged file raises here)."""
    data = read_arrays(path)
    values: dict[str, object] = {}
    for f in fields(Rig):
        if f.name in _NESTED:
            prefix = f"{f.name}."
            sub = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
            if sub:
                cls = _NESTED[f.name]
                values[f.name] = cls(**{g.name: _scalar(sub[g.name]) for g in fields(cls)})
        elif f.name == "build_seconds":
            pairs = [str(s).split("=") for s in data.get(f.name, [])]
            values[f.name] = {k: float(v) for k, v in pairs}
        elif f.name in data:
            value = data[f.name]
            values[f.name] = (
                value.tolist()
                if f.name == "muscle_names"
                else (str(value) if value.ndim == 0 else value)
            )
    return Rig(**values)


def rig_cache_path(preset: RigPreset, model_key: str) -> Path:
    key = content_key("rig", preset.name, preset.lr_spacing_cm, preset.hr_ratio,
                      preset.build_hr, model_key, code_version())  # fmt: skip
    return cache_root() / "rigs" / f"{preset.name}_{key}.npz"


def load_rig(preset: str | RigPreset = "default", data_folder=None, progress=None,
             rebuild: bool = False, with_hr: bool = True) -> Rig:  # fmt: skip
    """The rig for a preset from the cache, built (and cached) when missing or stale.

    ``with_hr=False`` gives the LR-only rig that live playback needs (no HR mesh, no
    pytetwild); its LR parts are identical to the full rig's."""
    from dataclasses import replace

    from .face_model import face_model_key

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise DataError(f"Unknown rig preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        preset = PRESETS[preset]
    if not with_hr:
        preset = replace(preset, build_hr=False)
    path = rig_cache_path(preset, face_model_key(data_folder))

    def build() -> Rig:
        rig = build_rig(preset, load_face_model(data_folder), progress)
        rig.key = path.stem
        return rig

    def write(tmp: Path, rig: Rig) -> None:
        write_arrays(tmp, rig_arrays(rig))

    return read_or_rebuild(path, read_rig, build, write, "rig", rebuild=rebuild)


__all__ = ["PRESETS", "Rig", "RigPreset", "build_rig", "load_rig", "JAW", "SKULL", "REGIONS"]
