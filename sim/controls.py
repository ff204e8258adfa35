"""Per-frame controls of the simulator and their validation.

A frame is driven by one activation in [0, 1] per named muscle (missing names are 0), a
jaw pose and a rigid head transform (4×4, cm), plus optional external forces: gravity
(cm/s², world frame), point springs pulling an ICT vertex or a mesh node to a target, and
sphere/plane colliders that the skin must stay outside of. ``validate_controls`` turns
what an artist or a script typed into clean controls: unknown names and NaN/inf raise
ControlError naming the control and the fix; out-of-range values clamp with a warning.

Physical bounds (clamped with a warning, which reaches the panel): gravity up to
``MAX_GRAVITY`` (10 g) in magnitude, and spring stiffness up to ``MAX_SPRING_STIFFNESS``.
Measured on the default rig (LR, 200 iterations): 10 g sags the face 5.5 mm and converges;
100 g moves it 6 cm without converging and 1e6 g 170 m. A spring on the cheek at 1e6
dyn/cm (the dataset's lip spring) converges, while from 1e7 the spring overwhelms the
tissue (muscle μ·1 cm ≈ 6e5 dyn/cm), the solve stops converging, and at 1e8 the point is
already held within 0.5 mm of its target: a stiffer spring changes nothing physical.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .anatomy import JawPose, clamp_jaw_pose
from .errors import ControlError

RIGID_TOLERANCE = 1e-3  # max |RᵀR − I| entry (and |det R − 1|) accepted as rigid
SPRING_KINDS = ("vertex", "node")
STANDARD_GRAVITY = 981.0  # cm/s²
MAX_GRAVITY = 10.0 * STANDARD_GRAVITY  # cm/s²: beyond it the solve does not converge
MAX_SPRING_STIFFNESS = 1.0e8  # dyn/cm: a spring this stiff already pins its point


@dataclass(frozen=True)
class PointSpring:
    """A zero-length spring pulling a point to ``target`` (3,) cm with ``stiffness`` in
    dyn/cm (force per cm of stretch). ``kind`` "vertex": ``index`` is an ICT vertex of the
    simulated skin (through the embedding); "node": ``index`` is a simulation-mesh node."""

    index: int
    target: tuple[float, float, float]
    stiffness: float
    kind: str = "vertex"


@dataclass(frozen=True)
class Sphere:
    """A sphere collider: ``centre`` (3,) cm, ``radius`` cm; the skin stays outside."""

    centre: tuple[float, float, float]
    radius: float


@dataclass(frozen=True)
class Plane:
    """A half-space collider through ``point`` (3,) cm with outward unit ``normal``; the
    skin stays on the side the normal points to."""

    point: tuple[float, float, float]
    normal: tuple[float, float, float]


@dataclass(frozen=True)
class Controls:
    """One frame of controls. ``activations``: muscle name → [0, 1] (missing = 0);
    ``jaw``: opening (deg), lateral and protrusion (mm); ``head_transform``: rigid 4×4
    (cm) applied to the whole head, default identity; ``gravity``: (3,) cm/s² in world
    frame or None (off); ``point_springs`` and ``colliders``: see PointSpring, Sphere,
    Plane (tuples ``(index, target, stiffness)`` are accepted for springs)."""

    activations: dict[str, float] = field(default_factory=dict)
    jaw: JawPose = field(default_factory=JawPose)
    head_transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    gravity: tuple[float, float, float] | None = None
    point_springs: tuple = ()
    colliders: tuple = ()


def _check_finite(name: str, values, fix: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ControlError(f"Control {name} is {values!r} (NaN or infinite); {fix}.")
    return array


def _vector3(name: str, values, fix: str) -> tuple[float, float, float]:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(3)
    except (TypeError, ValueError) as error:
        raise ControlError(f"Control {name} must be 3 numbers, got {values!r}; {fix}.") from error
    array = _check_finite(name, array, fix)
    return (float(array[0]), float(array[1]), float(array[2]))


def _clean_activations(activations, muscle_names, warnings) -> dict[str, float]:
    known = set(muscle_names)
    clean: dict[str, float] = {}
    for name, value in dict(activations).items():
        if name not in known:
            close = difflib.get_close_matches(str(name), muscle_names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ControlError(
                f"Unknown muscle {name!r} in the activations.{hint} Use one of the rig's "
                f"muscle names ({len(muscle_names)}, e.g. {muscle_names[0]})."
            )
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ControlError(
                f"Activation of {name} is {value!r}, not a number; give a value in [0, 1]."
            ) from error
        if not math.isfinite(number):
            raise ControlError(
                f"Activation of {name} is {number} (NaN or infinite); give a value in [0, 1]."
            )
        if not 0.0 <= number <= 1.0:
            clamped = min(max(number, 0.0), 1.0)
            warnings.append(f"activation of {name} {number:g} clamped to {clamped:g}")
            number = clamped
        clean[name] = number
    return clean


def _clean_jaw(jaw: JawPose, warnings) -> JawPose:
    for f in fields(JawPose):
        value = getattr(jaw, f.name)
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ControlError(f"Jaw {f.name} is {value!r}, not a number.") from error
        if not math.isfinite(number):
            raise ControlError(
                f"Jaw {f.name} is {number} (NaN or infinite); give a finite value "
                "(opening in degrees, lateral and protrusion in mm)."
            )
    clamped, jaw_warnings = clamp_jaw_pose(jaw)
    warnings.extend(jaw_warnings)
    return clamped


def _clean_head_transform(transform) -> np.ndarray:
    fix = "give a rigid 4×4 transform (rotation and translation, last row 0 0 0 1)"
    try:
        matrix = np.asarray(transform, dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError) as error:
        raise ControlError(f"The head transform must be 4×4; {fix}.") from error
    matrix = _check_finite("head_transform", matrix, fix)
    rotation = matrix[:3, :3]
    orthogonality = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if (
        orthogonality > RIGID_TOLERANCE
        or abs(np.linalg.det(rotation) - 1.0) > RIGID_TOLERANCE
        or np.abs(matrix[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-9
    ):
        raise ControlError(
            "The head transform is not rigid (it scales, shears or mirrors the head); "
            f"{fix}. Scale the rig's identity instead of the head transform."
        )
    u, _, vt = np.linalg.svd(rotation)  # remove round-off so the skin moves exactly rigidly
    clean = matrix.copy()
    clean[:3, :3] = u @ vt
    return clean


def _spring_index(name: str, index) -> int:
    """The spring's vertex or node index: a whole number ≥ 0 (3.7 is refused, not cut)."""
    if isinstance(index, bool) or not isinstance(index, numbers.Real):
        raise ControlError(f"{name}.index is {index!r}; give a whole vertex or node number.")
    if not float(index).is_integer() or index < 0:
        raise ControlError(
            f"{name}.index is {index!r}; give a whole vertex or node number ≥ 0 (not a "
            "fraction: it names one point)."
        )
    return int(index)


def _clean_gravity(gravity, warnings) -> tuple[float, float, float]:
    """Gravity (3,) cm/s², its magnitude clamped to MAX_GRAVITY with a warning."""
    vector = np.array(_vector3("gravity", gravity, "give (3,) cm/s² or None"))
    magnitude = float(np.linalg.norm(vector))
    if magnitude > MAX_GRAVITY:
        vector *= MAX_GRAVITY / magnitude
        warnings.append(
            f"gravity {magnitude:g} cm/s² ({magnitude / STANDARD_GRAVITY:.3g} g) clamped to "
            f"{MAX_GRAVITY:g} cm/s² (10 g; beyond it the tissue solve does not converge)"
        )
    return (float(vector[0]), float(vector[1]), float(vector[2]))


def _clean_spring(spring, position: int, warnings) -> PointSpring:
    if not isinstance(spring, PointSpring):
        try:
            spring = PointSpring(*spring)
        except TypeError as error:
            raise ControlError(
                f"Point spring {position} must be (index, target (3,), stiffness) or a "
                f"PointSpring, got {spring!r}."
            ) from error
    name = f"point_springs[{position}]"
    if spring.kind not in SPRING_KINDS:
        raise ControlError(f"{name}.kind is {spring.kind!r}; use one of {SPRING_KINDS}.")
    target = _vector3(f"{name}.target", spring.target, "give a finite target in cm")
    stiffness = float(_check_finite(f"{name}.stiffness", spring.stiffness, "give dyn/cm ≥ 0"))
    if stiffness < 0:
        raise ControlError(f"{name}.stiffness is {stiffness:g}; give a value ≥ 0 (dyn/cm).")
    if stiffness > MAX_SPRING_STIFFNESS:
        warnings.append(
            f"{name}.stiffness {stiffness:g} dyn/cm clamped to {MAX_SPRING_STIFFNESS:g} (a "
            "spring this stiff already holds its point on the target)"
        )
        stiffness = MAX_SPRING_STIFFNESS
    index = _spring_index(name, spring.index)
    return PointSpring(index, target, stiffness, spring.kind)


def _clean_collider(collider, position: int):
    name = f"colliders[{position}]"
    if isinstance(collider, Sphere):
        radius = float(_check_finite(f"{name}.radius", collider.radius, "give a radius in cm"))
        if radius <= 0:
            raise ControlError(f"{name}.radius is {radius:g}; give a positive radius (cm).")
        return Sphere(_vector3(f"{name}.centre", collider.centre, "give a centre in cm"), radius)
    if isinstance(collider, Plane):
        normal = np.array(_vector3(f"{name}.normal", collider.normal, "give a unit normal"))
        length = np.linalg.norm(normal)
        if length < 1e-9:
            raise ControlError(f"{name}.normal is zero; give the plane's outward normal.")
        normal = normal / length
        point = _vector3(f"{name}.point", collider.point, "give a point in cm")
        return Plane(point, (float(normal[0]), float(normal[1]), float(normal[2])))
    raise ControlError(f"{name} is {collider!r}; use a Sphere(centre, radius) or a Plane.")


def validate_controls(controls: Controls, muscle_names) -> tuple[Controls, list[str]]:
    """(clean controls, warnings). Raises ControlError for unknown muscle names, NaN or
    infinite values anywhere, a non-rigid head transform and a spring index that is not a
    whole number ≥ 0; clamps activations to [0, 1], the jaw pose to JAW_LIMITS, gravity to
    MAX_GRAVITY and spring stiffness to MAX_SPRING_STIFFNESS with a warning per clamp."""
    muscle_names = list(muscle_names)
    warnings: list[str] = []
    activations = _clean_activations(controls.activations, muscle_names, warnings)
    jaw = _clean_jaw(controls.jaw, warnings)
    head = _clean_head_transform(controls.head_transform)
    gravity = None
    if controls.gravity is not None:
        gravity = _clean_gravity(controls.gravity, warnings)
    springs = tuple(_clean_spring(s, i, warnings) for i, s in enumerate(controls.point_springs))
    colliders = tuple(_clean_collider(c, i) for i, c in enumerate(controls.colliders))
    clean = replace(
        controls,
        activations=activations,
        jaw=jaw,
        head_transform=head,
        gravity=gravity,
        point_springs=springs,
        colliders=colliders,
    )
    return clean, warnings


def same_controls(a, b) -> bool:
    """Whether two controls (or any of their parts) are equal value for value: arrays by
    their elements, dataclasses by their fields, containers element by element."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))
    if type(a) is not type(b):
        return False
    if hasattr(a, "__dataclass_fields__"):
        return all(same_controls(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_controls(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(map(same_controls, a, b))
    return a == b


__all__ = [
    "MAX_GRAVITY",
    "MAX_SPRING_STIFFNESS",
    "Controls",
    "JawPose",
    "Plane",
    "PointSpring",
    "Sphere",
    "same_controls",
    "validate_controls",
]
