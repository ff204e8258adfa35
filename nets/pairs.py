"""Paired data for simulation super-resolution (numpy only, no torch): a coarse (LR)
tetrahedral simulation and the fine (HR) skin surface of the same motion, frame by frame.

``load_pairs(path)`` reads either of two sources into a ``PairSet``:

(a) the **neutral format** below (any paired data; ``python -m physface prepare`` builds it
    from folders of per-frame OBJ files, ``write_pairs`` writes it);
(b) a **face dataset folder** (``python -m physface dataset`` output, read with
    ``sim.dataset_format``). The skin rows are the rig's embedded ICT vertices
    (``rest.npz`` ``embedded_vertices``, the same set and order as the rig's ``lr_skin`` and
    ``hr_skin``); skin triangles are the ICT polygons (``triangles``) whose three corners
    are all embedded, remapped to rows. Per frame ``lr`` is the LR ``volume`` and ``skin``
    the HR ``skin`` at the embedded vertices; ``converged`` is true when the HR frame
    reached the solver tolerance or stalled below ``sim.tolerances.SETTLED_RESIDUAL``
    (settled: the frame's skin no longer moves; see there).
    The folder does not hold the embedding of the skin in the LR lattice nor the neighbour
    tables (these need the HR mesh), so with ``tables="rig"`` they come from the rig the
    dataset names: ``<cache>/rigs/<rig_key>.npz`` (``dataset.json`` ``rig_key``, checked
    against ``rig_sha256``) — ``rig.lr_skin`` (elements, weights), ``rig.lr_knn`` and
    ``rig.hr_skin_lr_neighbours`` / ``_distances`` (geodesic on the HR mesh's surface plus
    the LR vertex's depth, ``sim.neighbours``). With ``tables="dataset"`` they are computed
    from the folder alone: ``lr_knn`` by ``sim.neighbours.lr_geodesic_knn`` on the LR
    lattice (the same as the rig's), the embedding element of each skin vertex chosen
    among its nearby LR elements as the one whose barycentric weights reproduce the
    dataset's LR-embedded skin (the ``lr.npz`` ``skin``; equal to the rig's embedding up
    to float rounding), and the neighbour table on the ICT skin surface itself
    (``skin_surface_neighbours``: deterministic from the LR lattice and the ICT skin, but
    not the rig's HR-surface table). ``"auto"`` (default) uses the rig when its file is
    in the cache and unchanged, else the folder alone; ``PairSet.source`` says which.

Protocol splits of the face dataset (Park et al. 2024 §5.2): **train** = the amazement
and pain sequences and their seeded variants (``amazement_v1``, …); **val** = of each
training theme, its last variant when the theme has two or more, else the last 15 % of
its one sequence's frames (at least one) split off as the sequence ``<name>-val`` (the
first 85 % stay ``<name>`` in train); **test** = anger, fear and their variants;
**generalisation** = head_shake, lip_spring, cheek_sphere (test only). Sequences without
both LR and HR frames are left out; a sequence still being generated gives the frames both
resolutions have committed.

Neutral format (``FORMAT`` = "physface-pairs/1"); positions in cm, float32; indices int64;
every file written atomically (``sim.cache.atomic_path``), every .npz uncompressed with
fixed timestamps (``sim.dataset_format.write_npz``) so equal arrays give equal bytes::

    DIR/pairs.json          {"format": "physface-pairs/1", "units": "cm", "source": str,
                             "key": str (lattice_key of lr_rest, lr_tets),
                             "counts": {"lr_nodes": N, "lr_tets": E, "skin_vertices": M,
                                        "skin_triangles": T, "neighbours": K, "lr_knn": k},
                             "sequences": [{"name": str, "frames": F, "file":
                                            "sequences/<name>.npz", "sha256": str}, ...]}
                            written last: a folder without it is incomplete.
    DIR/rest.npz            lr_rest (N, 3) f4        LR tet mesh nodes at rest
                            lr_tets (E, 4) i8        LR tetrahedra (node indices)
                            skin_rest (M, 3) f4      HR surface ("skin") vertices at rest
                            skin_triangles (T, 3) i8 triangles over the M skin vertices
                            skin_lr_neighbours (M, K) i8  each skin vertex's K nearest LR
                                                     nodes along the HR surface, ascending
                            skin_lr_distances (M, K) f4   their distances (cm)
                            lr_knn (N, k) i8         each LR node's k nearest other LR nodes
                                                     along the rest LR edges (no self)
                            skin_elements (M,) i8    LR tet each skin vertex is embedded in
                            skin_weights (M, 4) f4   its barycentric weights (sum 1;
                                                     negative outside the LR mesh)
                            skin_vertices (M,) i8    optional: the ICT vertex of each row
    DIR/splits.json         {"train": [names], "val": [...], "test": [...],
                             "generalisation": [...]}: every sequence in at most one list;
                            a sequence in none (or a folder without the file) is "train".
                            Edit it to re-split without touching the arrays.
    DIR/sequences/<name>.npz  lr (F, N, 3) f4 LR node positions per frame;
                            skin (F, M, 3) f4 skin positions per frame;
                            converged (F,) bool the fine frame reached the solver tolerance
                            (all True when the source does not say)

Sequence names are letters, digits, ``_``, ``-`` and ``.`` (they are file names).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..sim.errors import DataError
from ..sim.tolerances import SETTLED_RESIDUAL

FORMAT = "physface-pairs/1"
SPLITS = ("train", "val", "test", "generalisation")
# the paper's two and the range of motion (sim/data/performances.toml)
TRAIN_THEMES = ("amazement", "pain", "range_face", "range_mouth")
TEST_THEMES = ("anger", "fear")
GENERALISATION = ("head_shake", "lip_spring", "cheek_sphere")
VAL_FRACTION = 0.15
NEIGHBOURS = 20
LR_KNN = 5
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_REST_REQUIRED = (
    "lr_rest",
    "lr_tets",
    "skin_rest",
    "skin_triangles",
    "skin_lr_neighbours",
    "skin_lr_distances",
    "lr_knn",
    "skin_elements",
    "skin_weights",
)


def lattice_key(lr_rest: np.ndarray, lr_tets: np.ndarray) -> str:
    """Content hash (16 hex digits) of an LR lattice: its rest nodes as float32 and its
    tets as int64 (shapes included). A model trained on one lattice refuses another."""
    hasher = hashlib.sha256()
    for array in (np.asarray(lr_rest, np.float32), np.asarray(lr_tets, np.int64)):
        array = np.ascontiguousarray(array)
        hasher.update(repr(array.shape).encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:16]


@dataclass
class PairRest:
    """The rest shapes and every rest-only table (shapes in the module docstring)."""

    lr_rest: np.ndarray
    lr_tets: np.ndarray
    skin_rest: np.ndarray
    skin_triangles: np.ndarray
    skin_lr_neighbours: np.ndarray
    skin_lr_distances: np.ndarray
    lr_knn: np.ndarray
    skin_elements: np.ndarray
    skin_weights: np.ndarray
    skin_vertices: np.ndarray | None = None
    key: str = ""

    def __post_init__(self):
        f32, i64 = np.float32, np.int64
        for name, dtype in (("lr_rest", f32), ("skin_rest", f32), ("skin_lr_distances", f32),
                            ("skin_weights", f32), ("lr_tets", i64), ("skin_triangles", i64),
                            ("skin_lr_neighbours", i64), ("lr_knn", i64),
                            ("skin_elements", i64)):  # fmt: skip
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        if self.skin_vertices is not None:
            self.skin_vertices = np.ascontiguousarray(self.skin_vertices, dtype=i64)
        self.check()
        self.key = lattice_key(self.lr_rest, self.lr_tets)

    @property
    def lr_count(self) -> int:
        return len(self.lr_rest)

    @property
    def skin_count(self) -> int:
        return len(self.skin_rest)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``rest.npz`` (skin_vertices only when known)."""
        out = {name: getattr(self, name) for name in _REST_REQUIRED}
        if self.skin_vertices is not None:
            out["skin_vertices"] = self.skin_vertices
        return out

    def check(self) -> None:
        """DataError naming the first array whose shape or range is wrong."""
        n, m = len(self.lr_rest), len(self.skin_rest)
        e = len(self.lr_tets)
        k = self.skin_lr_neighbours.shape[1] if self.skin_lr_neighbours.ndim == 2 else -1
        expected = {
            "lr_rest": (n, 3),
            "lr_tets": (e, 4),
            "skin_rest": (m, 3),
            "skin_triangles": (len(self.skin_triangles), 3),
            "skin_lr_neighbours": (m, k),
            "skin_lr_distances": (m, k),
            "lr_knn": (n, self.lr_knn.shape[1] if self.lr_knn.ndim == 2 else -1),
            "skin_elements": (m,),
            "skin_weights": (m, 4),
        }
        if self.skin_vertices is not None:
            expected["skin_vertices"] = (m,)
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise DataError(
                    f"The pair rest array {name} has shape {getattr(self, name).shape}, "
                    f"expected {shape}; prepare the data again."
                )
        for name, limit in (("lr_tets", n), ("skin_triangles", m), ("skin_lr_neighbours", n),
                            ("lr_knn", n), ("skin_elements", e)):  # fmt: skip
            values = getattr(self, name)
            if values.size and (values.min() < 0 or values.max() >= limit):
                raise DataError(
                    f"The pair rest array {name} indexes outside 0..{limit - 1}; prepare "
                    "the data again."
                )
        for name in ("lr_rest", "skin_rest", "skin_lr_distances", "skin_weights"):
            if not np.isfinite(getattr(self, name)).all():
                raise DataError(f"The pair rest array {name} is not finite; prepare it again.")


@dataclass
class PairSequence:
    """One sequence: LR node positions ``lr`` (F, N, 3), skin positions ``skin``
    (F, M, 3), both float32 cm, and ``converged`` (F,) bool of the fine frames."""

    name: str
    split: str
    lr: np.ndarray
    skin: np.ndarray
    converged: np.ndarray | None = None

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise DataError(
                f"The sequence name {self.name!r} is not a file name; use letters, digits, "
                "'_', '-' and '.'."
            )
        if self.split not in SPLITS:
            raise DataError(f"Sequence {self.name}: split {self.split!r} is not one of {SPLITS}.")
        self.lr = np.ascontiguousarray(self.lr, dtype=np.float32)
        self.skin = np.ascontiguousarray(self.skin, dtype=np.float32)
        frames = len(self.lr)
        if self.converged is None:
            self.converged = np.ones(frames, dtype=bool)
        self.converged = np.ascontiguousarray(self.converged, dtype=bool)
        if self.lr.ndim != 3 or self.lr.shape[2] != 3 or self.skin.ndim != 3:
            raise DataError(
                f"Sequence {self.name}: lr {self.lr.shape} and skin {self.skin.shape} must be "
                "(frames, points, 3)."
            )
        if len(self.skin) != frames or self.converged.shape != (frames,):
            raise DataError(
                f"Sequence {self.name}: {frames} LR frames, {len(self.skin)} skin frames and "
                f"{len(self.converged)} converged flags; they must match."
            )

    @property
    def frames(self) -> int:
        return len(self.lr)


@dataclass
class PairSet:
    """Rest shapes and tables, the sequences by name (in order), and where they came from."""

    rest: PairRest
    sequences: dict[str, PairSequence] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        for sequence in self.sequences.values():
            n, m = self.rest.lr_count, self.rest.skin_count
            if sequence.lr.shape[1] != n or sequence.skin.shape[1:] != (m, 3):
                raise DataError(
                    f"Sequence {sequence.name} has {sequence.lr.shape[1]} LR nodes and "
                    f"{sequence.skin.shape[1]} skin vertices per frame; the rest has {n} and {m}."
                )

    def split(self, name: str) -> list[PairSequence]:
        """The sequences of one split, in order."""
        return [s for s in self.sequences.values() if s.split == name]

    def splits(self) -> dict[str, list[str]]:
        """Split → sequence names (every split listed, possibly empty)."""
        return {split: [s.name for s in self.split(split)] for split in SPLITS}


# --- the neutral format ------------------------------------------------------------------------


def write_pairs(folder: str | Path, pairset: PairSet) -> Path:
    """Write a PairSet in the neutral format (module docstring) into ``folder``; returns it.
    ``pairs.json`` is removed first and written last, so an interrupted write leaves a
    folder that ``load_pairs`` refuses instead of a mix."""
    from ..sim.dataset_format import write_json, write_npz

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pairs.json").unlink(missing_ok=True)
    write_npz(folder / "rest.npz", pairset.rest.arrays())
    entries = []
    for sequence in pairset.sequences.values():
        file = f"sequences/{sequence.name}.npz"
        (folder / "sequences").mkdir(exist_ok=True)
        digest = write_npz(
            folder / file,
            {"lr": sequence.lr, "skin": sequence.skin, "converged": sequence.converged},
        )
        entries.append(
            {"name": sequence.name, "frames": sequence.frames, "file": file, "sha256": digest}
        )
    write_json(folder / "splits.json", pairset.splits())
    rest = pairset.rest
    write_json(
        folder / "pairs.json",
        {
            "format": FORMAT,
            "units": "cm",
            "source": pairset.source,
            "key": rest.key,
            "counts": {
                "lr_nodes": rest.lr_count,
                "lr_tets": len(rest.lr_tets),
                "skin_vertices": rest.skin_count,
                "skin_triangles": len(rest.skin_triangles),
                "neighbours": int(rest.skin_lr_neighbours.shape[1]),
                "lr_knn": int(rest.lr_knn.shape[1]),
            },
            "sequences": entries,
        },
    )
    return folder


def read_splits(path: str | Path, names) -> dict[str, str]:
    """Sequence name → split from a splits file (``{"train": [names], ...}``); names it
    does not list are "train". DataError for an unknown split or sequence, or a name in
    two splits."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(
            f"Cannot read the splits file {path} ({error}); fix or remove it."
        ) from None
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise DataError(f'{path} must be {{"train": [names], "val": [...], "test": [...], ...}}.')
    names = list(names)
    out = dict.fromkeys(names, "train")
    seen: set[str] = set()
    for split, members in value.items():
        if split not in SPLITS:
            raise DataError(f"{path}: unknown split {split!r}; the splits are {', '.join(SPLITS)}.")
        for name in members:
            if name not in out:
                raise DataError(f"{path} names {name!r}, which is not a sequence here.")
            if name in seen:
                raise DataError(f"{path} puts {name!r} in two splits.")
            seen.add(name)
            out[name] = split
    return out


def _read_neutral(folder: Path) -> PairSet:
    from ..sim.dataset_format import read_npz

    meta = json.loads((folder / "pairs.json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise DataError(f"{folder}/pairs.json is not {FORMAT}; prepare the data again.")
    try:
        stored = read_npz(folder / "rest.npz")
    except (OSError, ValueError) as error:
        raise DataError(
            f"{folder}/rest.npz is unreadable ({error}); prepare the data again."
        ) from None
    missing = [name for name in _REST_REQUIRED if name not in stored]
    if missing:
        raise DataError(f"{folder}/rest.npz lacks {', '.join(missing)}; prepare the data again.")
    rest = PairRest(**{name: stored[name] for name in (*_REST_REQUIRED, "skin_vertices")
                       if name in stored})  # fmt: skip
    if meta.get("key") and meta["key"] != rest.key:
        raise DataError(f"{folder}/rest.npz does not match pairs.json (another LR lattice).")
    names = [entry["name"] for entry in meta["sequences"]]
    splits_file = folder / "splits.json"
    splits = read_splits(splits_file, names) if splits_file.is_file() else {}
    sequences = {}
    for entry in meta["sequences"]:
        try:
            arrays = read_npz(folder / entry["file"])
        except (OSError, ValueError) as error:
            raise DataError(
                f"{folder / entry['file']} is unreadable ({error}); prepare the data again."
            ) from None
        sequences[entry["name"]] = PairSequence(
            entry["name"],
            splits.get(entry["name"], "train"),
            arrays["lr"],
            arrays["skin"],
            arrays.get("converged"),
        )
    return PairSet(rest, sequences, str(meta.get("source", "")))


# --- the face dataset --------------------------------------------------------------------------


def face_splits(meta: dict) -> dict[str, str]:
    """Sequence name → split for a face dataset's ``dataset.json`` (module docstring);
    a training theme with one sequence maps it to "train+val" (its tail is split off)."""
    out: dict[str, str] = {}
    by_theme: dict[str, list[str]] = {}
    for sequence in meta["sequences"]:
        name, kind, theme = sequence["name"], sequence.get("kind"), sequence.get("theme")
        if kind == "generalisation" or name in GENERALISATION:
            out[name] = "generalisation"
        elif theme in TEST_THEMES:
            out[name] = "test"
        elif theme in TRAIN_THEMES:
            out[name] = "train"
            by_theme.setdefault(theme, []).append(name)
    for names in by_theme.values():
        if len(names) >= 2:
            out[names[-1]] = "val"
        else:
            out[names[0]] = "train+val"
    return out


def _embedded_triangles(triangles: np.ndarray, embedded: np.ndarray, vertex_count: int):
    """ICT triangles whose corners are all embedded, remapped to embedded rows."""
    row = np.full(vertex_count, -1, dtype=np.int64)
    row[embedded] = np.arange(len(embedded))
    mapped = row[triangles]
    return mapped[(mapped >= 0).all(axis=1)]


def _rig_tables(folder: Path, meta: dict, embedded: np.ndarray, lr_rest: np.ndarray):
    """(elements, weights, lr_knn, neighbours, distances) from the dataset's cached rig, or
    a reason (str) why it cannot be used."""
    from ..sim.cache import cache_root
    from ..sim.dataset_format import file_sha256
    from ..sim.rig import read_rig

    path = cache_root() / "rigs" / f"{meta.get('rig_key')}.npz"
    if not path.is_file():
        return f"its rig {path} is not in the cache"
    if meta.get("rig_sha256") and file_sha256(path) != meta["rig_sha256"]:
        return f"the cached rig {path} differs from the one the dataset was made with"
    rig = read_rig(path)
    if rig.hr_skin_lr_neighbours is None or rig.lr_knn is None:
        return f"the cached rig {path} has no neighbour tables (no HR mesh)"
    if not (
        np.array_equal(rig.lr_skin.vertices, embedded)
        and np.array_equal(rig.hr_skin.vertices, embedded)
        and np.array_equal(rig.lr.rest_positions.astype(np.float32), lr_rest)
    ):
        return f"the cached rig {path} does not match the dataset's rest.npz"
    return (
        rig.lr_skin.elements,
        rig.lr_skin.weights,
        rig.lr_knn,
        rig.hr_skin_lr_neighbours,
        rig.hr_skin_lr_distances,
    )


def rig_pair_rest(rig, ict_triangles: np.ndarray) -> PairRest:
    """The rest data of a face rig (with its HR tables): skin rows are the rig's embedded
    ICT vertices, triangles the ICT ``ict_triangles`` (T, 3) among them."""
    if rig.hr_skin_lr_neighbours is None or rig.lr_knn is None:
        raise DataError(
            f"The rig {rig.preset!r} has no neighbour tables; load it with its HR mesh."
        )
    embedded = rig.lr_skin.vertices.astype(np.int64)
    rest = rig.ict_rest_positions
    return PairRest(
        lr_rest=rig.lr.rest_positions.astype(np.float32),
        lr_tets=rig.lr.tets,
        skin_rest=rest[embedded].astype(np.float32),
        skin_triangles=_embedded_triangles(
            np.asarray(ict_triangles, np.int64), embedded, len(rest)
        ),
        skin_lr_neighbours=rig.hr_skin_lr_neighbours,
        skin_lr_distances=rig.hr_skin_lr_distances,
        lr_knn=rig.lr_knn,
        skin_elements=rig.lr_skin.elements,
        skin_weights=rig.lr_skin.weights,
        skin_vertices=embedded,
    )


def fit_embedding(
    points: np.ndarray,
    lr_rest: np.ndarray,
    lr_tets: np.ndarray,
    lr_frames: np.ndarray | None = None,
    embedded_frames: np.ndarray | None = None,
    candidates: int = 64,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Barycentric embedding of points (P, 3) in the LR tets: (elements (P,), weights
    (P, 4) f4, worst reproduction error cm). Without frames, ``sim.tetmesh.embed_points``
    (containing element, else the one least outside). With LR node frames (F, N, 3) and the
    embedded points' positions in them (F, P, 3), each point takes, among its
    ``candidates`` nearest elements, the one whose weights reproduce those positions best
    (so an embedding restricted by rules the data does not record, such as the face's lip
    sides, is recovered from its output)."""
    from scipy.spatial import cKDTree

    from ..sim.tetmesh import barycentric, embed_points

    elements, weights = embed_points(points, lr_rest, lr_tets)
    elements = elements.astype(np.int64)
    if lr_frames is None or embedded_frames is None:
        return elements, weights, 0.0
    lr_frames = lr_frames.astype(np.float64)
    target = embedded_frames.astype(np.float64)

    def error_of(el, w, rows):
        corners = lr_frames[:, lr_tets[el]]  # (F, R, 4, 3)
        guess = np.einsum("rk,frkd->frd", w.astype(np.float64), corners)
        return np.linalg.norm(guess - target[:, rows], axis=2).max(axis=0)

    rows = np.arange(len(points))
    best = error_of(elements, weights, rows)
    bad = np.flatnonzero(best > 1e-4)
    if len(bad):
        centroids = lr_rest[lr_tets].mean(axis=1)
        k = min(candidates, len(lr_tets))
        nearest = cKDTree(centroids).query(points[bad], k=k)[1].reshape(len(bad), k)
        for column in range(k):
            el = nearest[:, column]
            w = barycentric(points[bad], lr_rest[lr_tets[el]]).astype(np.float32)
            err = error_of(el, w, bad)
            better = err < best[bad]
            elements[bad[better]], weights[bad[better]] = el[better], w[better]
            best[bad[better]] = err[better]
    return elements, weights, float(best.max()) if len(best) else 0.0


def _dataset_tables(rest, embedded, skin_rest, skin_triangles, lr_frames, lr_skin):
    from types import SimpleNamespace

    from ..sim.neighbours import lr_geodesic_knn
    from .prepare import skin_surface_neighbours

    lr_rest, lr_tets = rest["lr_rest"], rest["lr_tets"].astype(np.int64)
    elements, weights, _ = fit_embedding(skin_rest, lr_rest, lr_tets, lr_frames, lr_skin)
    knn, _ = lr_geodesic_knn(SimpleNamespace(rest_positions=lr_rest, tets=lr_tets), k=LR_KNN)
    neighbours, distances = skin_surface_neighbours(skin_rest, skin_triangles, lr_rest, NEIGHBOURS)
    return elements, weights, knn, neighbours, distances


def in_head_frame(points: np.ndarray, head_transforms: np.ndarray) -> np.ndarray:
    """Points (F, P, 3) cm taken into the head's own frame: the inverse of each frame's
    rigid head transform (F, 4, 4) applied. The network learns deformation, not where the
    head is: a face dataset's frames are read in the head frame (a head-shake frame
    otherwise reads as a deformation of centimetres), and a skin stage must take its LR
    input into the head frame and its output back out the same way."""
    points = np.asarray(points, dtype=np.float32)
    head = np.asarray(head_transforms, dtype=np.float64)
    if np.allclose(head, np.eye(4), atol=1e-9):
        return points
    local = np.einsum("fpd,fdk->fpk", points - head[:, None, :3, 3], head[:, :3, :3])
    return local.astype(np.float32)


def _read_face_dataset(folder: Path, tables: str) -> PairSet:
    from ..sim.dataset_format import read_dataset, read_npz, read_rest, read_sequence

    meta = read_dataset(folder)
    rest = read_rest(folder)
    embedded = rest["embedded_vertices"].astype(np.int64)
    neutral = rest["neutral"]
    skin_rest = neutral[embedded]
    triangles = _embedded_triangles(rest["triangles"].astype(np.int64), embedded, len(neutral))
    lr_rest = rest["lr_rest"].astype(np.float32)

    frames: dict[str, tuple] = {}
    for sequence in meta["sequences"]:
        try:
            lr = read_sequence(folder, sequence["name"], "lr")
            hr = read_sequence(folder, sequence["name"], "hr")
        except DataError:
            continue
        count = min(len(lr["volume"]), len(hr["skin"]))
        if count:
            frames[sequence["name"]] = (lr, hr, count)
    if not frames:
        raise DataError(f"{folder} has no sequence with both LR and HR frames yet.")

    found = None
    reason = "tables='dataset' was asked for"
    if tables in ("auto", "rig"):
        found = _rig_tables(folder, meta, embedded, lr_rest)
        if isinstance(found, str):
            reason, found = found, None
            if tables == "rig":
                raise DataError(
                    f"Cannot use the rig of the dataset {folder}: {reason}; build it with "
                    f"`python -m physface build-rig --preset {meta.get('preset')}` under the "
                    "same code, or load with tables='dataset'."
                )
    if found is not None:
        source = f"face dataset {folder} (rig {meta.get('rig_key')}: HR-surface tables)"
    else:
        sample = [(lr["volume"][:count], lr["skin"][:count]) for lr, _, count in frames.values()]
        lr_frames = np.concatenate([s[0] for s in sample])[:32]
        lr_skin = np.concatenate([s[1] for s in sample])[:32][:, embedded]
        found = _dataset_tables(rest, embedded, skin_rest, triangles, lr_frames, lr_skin)
        source = f"face dataset {folder} (tables from the folder alone, ICT skin surface: {reason})"
    elements, weights, knn, neighbours, distances = found
    pair_rest = PairRest(
        lr_rest=lr_rest,
        lr_tets=rest["lr_tets"],
        skin_rest=skin_rest,
        skin_triangles=triangles,
        skin_lr_neighbours=neighbours,
        skin_lr_distances=distances,
        lr_knn=knn,
        skin_elements=elements,
        skin_weights=weights,
        skin_vertices=embedded,
    )
    splits = face_splits(meta)
    sequences: dict[str, PairSequence] = {}
    for name, (lr, hr, count) in frames.items():
        split = splits.get(name, "train")
        head = read_npz(folder / name / "controls.npz")["head_transform"][:count]
        lr_pos = in_head_frame(lr["volume"][:count], head)
        skin = in_head_frame(hr["skin"][:count][:, embedded], head)
        converged = hr["converged"][:count] | (hr["residual"][:count] <= SETTLED_RESIDUAL)
        if split == "train+val":
            keep = count - max(1, int(round(VAL_FRACTION * count))) if count >= 2 else count
            sequences[name] = PairSequence(
                name, "train", lr_pos[:keep], skin[:keep], converged[:keep]
            )
            if keep < count:
                sequences[f"{name}-val"] = PairSequence(
                    f"{name}-val", "val", lr_pos[keep:], skin[keep:], converged[keep:]
                )
        else:
            sequences[name] = PairSequence(name, split, lr_pos, skin, converged)
    return PairSet(pair_rest, sequences, source)


def load_pairs(path: str | Path, tables: str = "auto") -> PairSet:
    """A PairSet from a neutral-format folder or a face dataset folder (detected by
    ``pairs.json`` or ``dataset.json``). ``tables`` (face dataset only): "auto", "rig" or
    "dataset" (module docstring). DataError naming the folder and the fix otherwise."""
    folder = Path(path)
    if tables not in ("auto", "rig", "dataset"):
        raise ValueError(f"tables must be 'auto', 'rig' or 'dataset', not {tables!r}.")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a prepared pair folder or a dataset.")
    if (folder / "pairs.json").is_file():
        return _read_neutral(folder)
    if (folder / "dataset.json").is_file():
        return _read_face_dataset(folder, tables)
    raise DataError(
        f"{folder} holds neither paired data (pairs.json; build it with `python -m physface "
        "prepare`) nor a face dataset (dataset.json; `python -m physface dataset`)."
    )


__all__ = [
    "FORMAT",
    "SPLITS",
    "PairRest",
    "PairSequence",
    "PairSet",
    "face_splits",
    "fit_embedding",
    "lattice_key",
    "load_pairs",
    "read_splits",
    "write_pairs",
]
