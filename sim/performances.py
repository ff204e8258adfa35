"""Performances: per-frame controls for the paired dataset, from editable themes.

A theme (``data/performances.toml``; ANATOMY.md "Expressions as action units") is a list of
beats — FACS action units with an onset → apex → release envelope over a window given in
fractions of the sequence — and speech passages of jaw syllables with lip shapes. Action
units reach muscles through each muscle's ``action_units`` (``muscles.toml``, plus the
file's ``[units]``) and the jaw through ``[jaw_units]``. ``theme_performance(name, frames,
seed)`` turns a theme into controls at any length; the seed varies timing, intensities,
asymmetry, syllables and a slow noise, so one theme gives many variants.

``generalisation_performance`` builds the sequences beyond the training space of Park et
al. 2024 §5.3: a head shaken about the vertical axis (dynamics), a spring pulling a mouth
corner and a sphere pushed into the cheek.

Units: jaw opening in degrees, lateral shift and protrusion in mm, positions in cm, 24
frames per second unless a performance says otherwise.
"""

from __future__ import annotations

import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .anatomy import JAW_LIMITS, JawPose
from .controls import Controls, PointSpring, Sphere
from .errors import DataError

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "performances.toml"
FPS = 24.0
THEMES = ("amazement", "anger", "fear", "pain")  # Park et al. 2024 §4
# Range of motion: every action unit alone and in the test themes' combinations, so the
# network trains on the whole control space (performances.toml explains why)
RANGE_THEMES = ("range_face", "range_mouth")
DATASET_THEMES = (*THEMES, *RANGE_THEMES)  # the themes a dataset simulates, in order
GENERALISATION = ("head_shake", "lip_spring", "cheek_sphere")
_JAW_KEYS = ("opening_deg", "lateral_mm", "protrusion_mm")


# --- the editable description -------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    """Action units ``units`` {AU: intensity} over the window ``at`` = (start, apex start,
    apex end, end) in fractions of the sequence; ``left``/``right`` side gains."""

    at: tuple[float, float, float, float]
    units: dict[str, float]
    left: float = 1.0
    right: float = 1.0


@dataclass(frozen=True)
class Speech:
    """Jaw syllables inside ``at`` = (start, end) fractions: ``rate_hz`` syllables per
    second, peak opening in ``opening_deg`` (min, max) degrees, one lip shape per syllable."""

    at: tuple[float, float]
    rate_hz: float
    opening_deg: tuple[float, float]
    lips: tuple[dict[str, float], ...]


@dataclass(frozen=True)
class Theme:
    name: str
    description: str
    frames: int
    beats: tuple[Beat, ...]
    speech: tuple[Speech, ...]


@dataclass(frozen=True)
class Variation:
    """Seeded variation (see the TOML's ``[variation]``)."""

    timing: float = 0.025
    intensity: tuple[float, float] = (0.85, 1.1)
    asymmetry: float = 0.08
    noise: float = 0.04
    noise_hz: float = 0.7
    syllable_jitter: float = 0.25
    min_ramp_s: float = 0.3


@dataclass(frozen=True)
class PerformanceBook:
    """Everything in the performance file, checked against the muscle catalogue.

    ``unit_muscles`` AU → muscle names; ``jaw_units`` AU → (opening deg, lateral mm,
    protrusion mm) at full intensity; ``generalisation`` the raw §5.3 tables."""

    muscle_names: tuple[str, ...]
    unit_muscles: dict[str, tuple[str, ...]]
    jaw_units: dict[str, tuple[float, float, float]]
    ignored_units: tuple[str, ...]
    variation: Variation
    themes: dict[str, Theme]
    generalisation: dict[str, dict]


def _fractions(values, count: int, where: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: `at` must be {count} numbers in [0, 1].") from error
    if len(numbers) != count or any(not 0.0 <= v <= 1.0 for v in numbers):
        raise DataError(f"{where}: `at` must be {count} numbers in [0, 1], got {values!r}.")
    if list(numbers) != sorted(numbers):
        raise DataError(f"{where}: `at` must be increasing, got {values!r}.")
    return numbers


def load_performance_book(path: str | Path | None = None, muscles_path=None) -> PerformanceBook:
    """Read and check the performance file: every action unit must reach a muscle or the
    jaw or be listed as ignored; windows are increasing fractions; intensities in [0, 1]."""
    from .muscles import muscle_catalogue

    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DataError(f"The performance file {path} cannot be read ({error}).") from error
    catalogue = muscle_catalogue(muscles_path)
    names = tuple(entry.name for entry in catalogue)
    unit_muscles: dict[str, list[str]] = {}
    for entry in catalogue:
        for unit in entry.action_units:
            unit_muscles.setdefault(unit, []).append(entry.name)
    units_table = dict(document.get("units", {}))
    ignored = tuple(units_table.pop("ignored", ()))
    for unit, stems in units_table.items():
        for stem in stems:
            matched = [n for n in names if n == stem or n in (f"{stem}_L", f"{stem}_R")]
            if not matched:
                raise DataError(f"{path.name} [units] {unit}: no muscle named {stem!r}.")
            unit_muscles.setdefault(unit, []).extend(matched)
    jaw_units = {}
    for unit, pose in document.get("jaw_units", {}).items():
        if len(pose) != 3:
            raise DataError(
                f"{path.name} [jaw_units] {unit}: give [opening deg, lateral mm, protrusion mm]."
            )
        jaw_units[unit] = tuple(float(v) for v in pose)
    variation = Variation(
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in document.get("variation", {}).items()
        }
    )
    known = set(unit_muscles) | set(jaw_units) | set(ignored)

    def checked_units(units: dict, where: str) -> dict[str, float]:
        for unit, value in units.items():
            if unit not in known:
                raise DataError(
                    f"{where}: action unit {unit} reaches no muscle and no jaw pose; add it to "
                    f"[units], [jaw_units] or `ignored` (known: {', '.join(sorted(known))})."
                )
            if not 0.0 <= float(value) <= 1.0:
                raise DataError(f"{where}: {unit} = {value}; give an intensity in [0, 1].")
        return {unit: float(value) for unit, value in units.items()}

    themes = {}
    for name in document:
        if name in ("units", "jaw_units", "variation", "generalisation"):
            continue
        table = document[name]
        beats = tuple(
            Beat(
                at=_fractions(b["at"], 4, f"{name} beat {i}"),
                units=checked_units(b.get("units", {}), f"{name} beat {i}"),
                left=float(b.get("left", 1.0)),
                right=float(b.get("right", 1.0)),
            )
            for i, b in enumerate(table.get("beats", []))
        )
        speech = tuple(
            Speech(
                at=_fractions(s["at"], 2, f"{name} speech {i}"),
                rate_hz=float(s["rate_hz"]),
                opening_deg=(float(s["opening_deg"][0]), float(s["opening_deg"][1])),
                lips=tuple(checked_units(lip, f"{name} speech {i}") for lip in s.get("lips", [])),
            )
            for i, s in enumerate(table.get("speech", []))
        )
        themes[name] = Theme(
            name, str(table.get("description", "")), int(table["frames"]), beats, speech
        )
    return PerformanceBook(
        muscle_names=names,
        unit_muscles={unit: tuple(muscles) for unit, muscles in unit_muscles.items()},
        jaw_units=jaw_units,
        ignored_units=ignored,
        variation=variation,
        themes=themes,
        generalisation=dict(document.get("generalisation", {})),
    )


# --- a generated sequence ------------------------------------------------------------------


@dataclass
class Performance:
    """Controls of F frames, as arrays (what the dataset stores).

    activations (F, M) float32 in [0, 1] for ``muscle_names`` (M,); jaw (F, 3) float32
    (opening deg, lateral mm, protrusion mm); head_transform (F, 4, 4) float32 rigid, cm;
    spring_vertices (S,) int32 ICT vertices pulled with spring_stiffness (S,) float32 dyn/cm
    toward spring_targets (F, S, 3) float32 cm; sphere_radii (C,) float32 cm and
    sphere_centres (F, C, 3) float32 cm; ``dynamics``: simulate with inertia."""

    name: str
    muscle_names: tuple[str, ...]
    activations: np.ndarray
    jaw: np.ndarray
    head_transform: np.ndarray
    spring_vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    spring_stiffness: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    spring_targets: np.ndarray | None = None
    sphere_radii: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sphere_centres: np.ndarray | None = None
    dynamics: bool = False
    fps: float = FPS
    kind: str = "theme"
    theme: str = ""
    seed: int = 0

    def __post_init__(self):
        frames = len(self.activations)
        if self.spring_targets is None:
            self.spring_targets = np.zeros((frames, len(self.spring_vertices), 3), np.float32)
        if self.sphere_centres is None:
            self.sphere_centres = np.zeros((frames, len(self.sphere_radii), 3), np.float32)

    @property
    def frames(self) -> int:
        return len(self.activations)

    def controls(self, frame: int) -> Controls:
        """The simulator's controls of one frame (float64 from the stored float32)."""
        springs = tuple(
            PointSpring(int(v), tuple(float(x) for x in self.spring_targets[frame, s]), float(k))
            for s, (v, k) in enumerate(
                zip(self.spring_vertices, self.spring_stiffness, strict=True)
            )
        )
        spheres = tuple(
            Sphere(tuple(float(x) for x in self.sphere_centres[frame, c]), float(r))
            for c, r in enumerate(self.sphere_radii)
        )
        return Controls(
            activations=dict(zip(self.muscle_names, self.activations[frame].tolist(), strict=True)),
            jaw=JawPose(*(float(v) for v in self.jaw[frame])),
            head_transform=self.head_transform[frame].astype(np.float64),
            point_springs=springs,
            colliders=spheres,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the on-disk ``controls.npz`` (README "Dataset")."""
        return {
            "muscle_names": np.array(self.muscle_names, dtype=str),
            "activations": self.activations.astype(np.float32),
            "jaw": self.jaw.astype(np.float32),
            "head_transform": self.head_transform.astype(np.float32),
            "spring_vertices": self.spring_vertices.astype(np.int32),
            "spring_stiffness": self.spring_stiffness.astype(np.float32),
            "spring_targets": self.spring_targets.astype(np.float32),
            "sphere_radii": self.sphere_radii.astype(np.float32),
            "sphere_centres": self.sphere_centres.astype(np.float32),
            "dynamics": np.array(self.dynamics),
            "fps": np.array(self.fps, dtype=np.float32),
        }

    @classmethod
    def from_arrays(cls, name: str, arrays, **extra) -> Performance:
        return cls(
            name=name,
            muscle_names=tuple(str(n) for n in arrays["muscle_names"]),
            activations=np.asarray(arrays["activations"], np.float32),
            jaw=np.asarray(arrays["jaw"], np.float32),
            head_transform=np.asarray(arrays["head_transform"], np.float32),
            spring_vertices=np.asarray(arrays["spring_vertices"], np.int32),
            spring_stiffness=np.asarray(arrays["spring_stiffness"], np.float32),
            spring_targets=np.asarray(arrays["spring_targets"], np.float32),
            sphere_radii=np.asarray(arrays["sphere_radii"], np.float32),
            sphere_centres=np.asarray(arrays["sphere_centres"], np.float32),
            dynamics=bool(arrays["dynamics"]),
            fps=float(arrays["fps"]),
            **extra,
        )


# --- envelopes -----------------------------------------------------------------------------


def smootherstep(x: np.ndarray) -> np.ndarray:
    """C² ramp 0 → 1 on [0, 1] (6x⁵ − 15x⁴ + 10x³), clamped outside."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def envelope(u: np.ndarray, at) -> np.ndarray:
    """Onset → apex → release over fractions ``u`` (F,) for ``at`` (start, apex start, apex
    end, end): 0 outside, smootherstep ramps, 1 at the apex."""
    a, b, c, d = at
    rise = smootherstep((u - a) / max(b - a, 1e-9))
    fall = 1.0 - smootherstep((u - c) / max(d - c, 1e-9))
    return np.minimum(rise, fall)


def _jittered_window(at, rng, variation: Variation, min_ramp: float):
    """Window points moved by the seed, kept increasing, ramps at least ``min_ramp``."""
    points = np.clip(np.asarray(at) + rng.normal(0.0, variation.timing, 4), 0.0, 1.0)
    a, b, c, d = np.sort(points)
    b = max(b, a + min_ramp)
    c = max(c, b)
    d = max(d, c + min_ramp)
    if d > 1.0:
        c, d = max(b, c - (d - 1.0)), 1.0
    return a, b, c, d


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _side_gains(muscle_names, left: float, right: float) -> np.ndarray:
    """(M,) gain per muscle: ``left`` for _L, ``right`` for _R, their mean for midline."""
    return np.array(
        [
            left if n.endswith("_L") else right if n.endswith("_R") else 0.5 * (left + right)
            for n in muscle_names
        ],
        np.float64,
    )


def _unit_strengths(book: PerformanceBook, units: dict[str, float]) -> np.ndarray:
    """(M,) the strongest unit each muscle serves in ``units``."""
    index = {name: i for i, name in enumerate(book.muscle_names)}
    strengths = np.zeros(len(book.muscle_names))
    for unit, value in units.items():
        for muscle in book.unit_muscles.get(unit, ()):
            strengths[index[muscle]] = max(strengths[index[muscle]], value)
    return strengths


def unit_activations(book: PerformanceBook, units: dict[str, float]) -> dict[str, float]:
    """Muscle activations {name: value > 0} of action units {unit: intensity}: each muscle
    takes the strongest unit it serves (its ``action_units`` in muscles.toml or the
    book's [units]). The one resolution of action units, for presets and performances."""
    strengths = _unit_strengths(book, units)
    return {book.muscle_names[i]: float(strengths[i]) for i in np.flatnonzero(strengths > 0)}


def _unit_jaw(book: PerformanceBook, units: dict[str, float]) -> np.ndarray:
    """(3,) jaw pose of the units (sum of the [jaw_units] poses times intensities)."""
    pose = np.zeros(3)
    for unit, value in units.items():
        if unit in book.jaw_units:
            pose += value * np.asarray(book.jaw_units[unit])
    return pose


def _slow_noise(rng, count: int, seconds: np.ndarray, hz: float) -> np.ndarray:
    """(F, count) smooth noise of about unit amplitude: three sines per channel."""
    frequencies = hz * rng.uniform(0.5, 1.5, (3, count))
    phases = rng.uniform(0.0, 2.0 * np.pi, (3, count))
    waves = np.sin(2.0 * np.pi * frequencies[:, None, :] * seconds[None, :, None] + phases[:, None])
    return waves.sum(axis=0) / np.sqrt(1.5)


def _combine(active: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Independent activations: 1 − (1 − a)(1 − b)."""
    return 1.0 - (1.0 - active) * (1.0 - np.clip(extra, 0.0, 1.0))


def _speech(book, speech: Speech, rng, seconds, total_s, variation):
    """Jaw (F, 3) and lip activations (F, M) of one speech passage."""
    start, end = speech.at[0] * total_s, speech.at[1] * total_s
    count = max(1, round((end - start) * speech.rate_hz))
    durations = 1.0 + variation.syllable_jitter * rng.uniform(-1.0, 1.0, count)
    durations *= (end - start) / durations.sum()
    starts = start + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    jaw = np.zeros((len(seconds), 3))
    lips = np.zeros((len(seconds), len(book.muscle_names)))
    for syllable_start, duration in zip(starts, durations, strict=True):
        phase = np.clip((seconds - syllable_start) / duration, 0.0, 1.0)
        shape = np.sin(np.pi * phase) ** 2  # C¹ open-close, zero at both ends
        jaw[:, 0] += rng.uniform(*speech.opening_deg) * shape
        jaw[:, 1] += rng.normal(0.0, 0.6) * shape  # a little lateral wander, mm
        if speech.lips:
            lip = speech.lips[int(rng.integers(len(speech.lips)))]
            strength = _unit_strengths(book, lip) * rng.uniform(0.6, 1.0)
            lips = _combine(lips, strength[None] * shape[:, None])
    return jaw, lips


def _clip_jaw(jaw: np.ndarray) -> np.ndarray:
    for k, key in enumerate(_JAW_KEYS):
        low, high = JAW_LIMITS[key]
        jaw[:, k] = np.clip(jaw[:, k], low, high)
    return jaw


def theme_performance(
    name: str,
    frames: int | None = None,
    seed: int = 0,
    book: PerformanceBook | None = None,
    fps: float = FPS,
) -> Performance:
    """Theme ``name`` as ``frames`` frames (default: the file's length) of controls; the
    same seed gives the same sequence, another seed a variant."""
    book = book or load_performance_book()
    if name not in book.themes:
        raise DataError(
            f"Unknown theme {name!r}; the performance file has {', '.join(book.themes)}."
        )
    theme, variation = book.themes[name], book.variation
    frames = int(frames if frames is not None else theme.frames)
    if frames < 1:
        raise DataError(f"A performance needs at least one frame, not {frames}.")
    rng = _rng(seed, name)
    u = np.arange(frames) / max(frames - 1, 1)
    seconds = np.arange(frames) / fps
    total_s = max(frames - 1, 1) / fps
    min_ramp = min(variation.min_ramp_s / total_s, 0.1)
    muscles = len(book.muscle_names)
    activations = np.zeros((frames, muscles))
    jaw = np.zeros((frames, 3))
    for beat in theme.beats:
        window = _jittered_window(beat.at, rng, variation, min_ramp)
        intensity = rng.uniform(*variation.intensity)
        left = beat.left * (1.0 + rng.normal(0.0, variation.asymmetry))
        right = beat.right * (1.0 + rng.normal(0.0, variation.asymmetry))
        shape = envelope(u, window) * intensity
        strength = _unit_strengths(book, beat.units) * _side_gains(book.muscle_names, left, right)
        activations = _combine(activations, shape[:, None] * strength[None])
        jaw += shape[:, None] * _unit_jaw(book, beat.units)[None]
    for speech in theme.speech:
        speech_jaw, lips = _speech(book, speech, rng, seconds, total_s, variation)
        jaw += speech_jaw
        activations = _combine(activations, lips)
    noise = _slow_noise(rng, muscles, seconds, variation.noise_hz)
    activations = activations + variation.noise * noise * (activations + 0.2)
    return Performance(
        name=name,
        muscle_names=book.muscle_names,
        activations=np.clip(activations, 0.0, 1.0).astype(np.float32),
        jaw=_clip_jaw(jaw).astype(np.float32),
        head_transform=np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1)),
        fps=fps,
        kind="theme",
        theme=name,
        seed=int(seed),
    )


# --- beyond the training space (§5.3) ------------------------------------------------------


def _vertex_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    a, b, c = (positions[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)
    normals = np.zeros_like(positions, dtype=np.float64)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


def cheek_point(model, xy_cm) -> tuple[int, np.ndarray, np.ndarray]:
    """(vertex, position (3,), outward unit normal (3,)) of the front-most face vertex
    within 0.6 cm of ``xy_cm`` (x, y) in the front view."""
    face = model.region("face")
    positions = model.neutral[face].astype(np.float64)
    near = np.linalg.norm(positions[:, :2] - np.asarray(xy_cm), axis=1) < 0.6
    if not near.any():
        raise DataError(f"No face vertex near the cheek point {xy_cm} (x, y cm).")
    vertex = int(face[np.flatnonzero(near)[np.argmax(positions[near, 2])]])
    normals = _vertex_normals(model.neutral.astype(np.float64), model.triangles(face))
    return vertex, model.neutral[vertex].astype(np.float64), normals[vertex]


def _yaw_transform(angle_deg: float, pivot: np.ndarray) -> np.ndarray:
    """4×4 rotation by ``angle_deg`` about the vertical (+Y) axis through ``pivot``."""
    angle = np.radians(angle_deg)
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = pivot - rotation @ pivot
    return transform


def _still(name: str, frames: int, book: PerformanceBook, fps: float, seed: int) -> Performance:
    return Performance(
        name=name,
        muscle_names=book.muscle_names,
        activations=np.zeros((frames, len(book.muscle_names)), np.float32),
        jaw=np.zeros((frames, 3), np.float32),
        head_transform=np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1)),
        fps=fps,
        kind="generalisation",
        seed=seed,
    )


def generalisation_performance(
    name: str,
    model,
    anatomy,
    frames: int | None = None,
    seed: int = 0,
    book: PerformanceBook | None = None,
    fps: float = FPS,
) -> Performance:
    """One §5.3 sequence: ``head_shake`` (theme under a yaw shake, dynamics),
    ``lip_spring`` (a spring on a mouth-corner landmark) or ``cheek_sphere`` (a sphere
    pushed into the cheek), on the rest face unless the table names a theme."""
    book = book or load_performance_book()
    if name not in book.generalisation:
        raise DataError(
            f"Unknown generalisation sequence {name!r}; the performance file has "
            f"{', '.join(book.generalisation)}."
        )
    table = book.generalisation[name]
    frames = int(frames if frames is not None else table["frames"])
    u = np.arange(frames) / max(frames - 1, 1)
    seconds = np.arange(frames) / fps
    if name == "head_shake":
        performance = theme_performance(table["theme"], frames, seed, book, fps)
        performance.name, performance.kind, performance.dynamics = name, "generalisation", True
        ramp_s = float(table["ramp_s"])
        total_s = max(frames - 1, 1) / fps
        fade = np.minimum(
            smootherstep(seconds / ramp_s), smootherstep((total_s - seconds) / ramp_s)
        )
        angles = float(table["yaw_deg"]) * fade * np.sin(2.0 * np.pi * table["rate_hz"] * seconds)
        pivot = anatomy.hinge_centre.astype(np.float64) + np.asarray(table["pivot_offset_cm"])
        performance.head_transform = np.stack([_yaw_transform(a, pivot) for a in angles]).astype(
            np.float32
        )
        return performance
    performance = _still(name, frames, book, fps, seed)
    shape = envelope(u, _fractions(table["at"], 4, f"generalisation {name}"))
    if name == "lip_spring":
        vertex = int(model.landmarks[int(table["landmark"])])
        rest = model.neutral[vertex].astype(np.float64)
        targets = rest[None] + shape[:, None] * np.asarray(table["pull_cm"])[None]
        performance.spring_vertices = np.array([vertex], np.int32)
        performance.spring_stiffness = np.array([table["stiffness"]], np.float32)
        performance.spring_targets = targets[:, None].astype(np.float32)
    elif name == "cheek_sphere":
        _, point, normal = cheek_point(model, table["cheek_cm"])
        radius, gap, depth = (float(table[k]) for k in ("radius_cm", "start_gap_cm", "depth_cm"))
        offset = radius + gap - shape * (gap + depth)
        performance.sphere_radii = np.array([radius], np.float32)
        performance.sphere_centres = (point[None] + offset[:, None] * normal[None])[:, None]
        performance.sphere_centres = performance.sphere_centres.astype(np.float32)
    else:
        raise DataError(f"No generator for the generalisation sequence {name!r}.")
    return performance


__all__ = [
    "FPS",
    "DATASET_THEMES",
    "GENERALISATION",
    "RANGE_THEMES",
    "THEMES",
    "Beat",
    "Performance",
    "PerformanceBook",
    "Speech",
    "Theme",
    "envelope",
    "generalisation_performance",
    "load_performance_book",
    "theme_performance",
]
