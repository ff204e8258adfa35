"""The rig's range against real faces: each action unit's key point at full activation
next to its published range (``data/action_units.toml``), and the elements a full-strength
face inverts.

``measure_actions`` plays each action alone from rest (both sides, jaw closed, solver to
``tolerance``) and reads its key point on the embedded skin, in millimetres. A row is
"within", "below" or "above" its published range, "opposite" when the point moves against
the published direction, "no range" where no published number was found, or "not in rig"
for actions the rig cannot make yet. ``full_strength_inversions`` counts the inverted
elements with every muscle at 1 and the jaw at its opening limit.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .anatomy import JAW_LIMITS, JawPose
from .controls import Controls
from .errors import DataError

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "action_units.toml"
MEASURES = ("along", "magnitude", "gap")
TOLERANCE = 1e-4
MAX_ITERATIONS = 400


@dataclass(frozen=True)
class ActionTarget:
    """One action unit (or combination) and where its key point moves on a real face."""

    name: str
    units: dict[str, float]
    key_point: int
    measure: str
    direction: np.ndarray  # (3,) unit vector, ICT frame
    range_mm: tuple[float, float] | None
    source: str
    in_rig: bool = True
    other: int | None = None


@dataclass
class ActionResult:
    """The rig's value for one target (mm) and how it compares."""

    target: ActionTarget
    value_mm: float
    along_mm: float  # displacement along the published direction, mm
    displacement_mm: np.ndarray  # (3,)
    verdict: str


def load_action_targets(path: str | Path | None = None) -> list[ActionTarget]:
    """Read and check the calibration targets."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DataError(f"The action-unit file {path} cannot be read ({error}).") from error
    targets = []
    for name, table in document.items():
        where = f"{path.name} [{name}]"
        measure = table.get("measure")
        if measure not in MEASURES:
            raise DataError(f"{where}: measure must be one of {MEASURES}, not {measure!r}.")
        direction = np.asarray(table.get("direction", ()), dtype=np.float64)
        if direction.shape != (3,) or not np.linalg.norm(direction) > 0:
            raise DataError(f"{where}: direction must be three numbers, not all zero.")
        low_high = table.get("range_mm")
        if low_high is not None and not (len(low_high) == 2 and 0 <= low_high[0] <= low_high[1]):
            raise DataError(f"{where}: range_mm must be [low, high] with 0 <= low <= high.")
        if measure == "gap" and "other" not in table:
            raise DataError(f"{where}: a 'gap' measure needs the 'other' vertex.")
        targets.append(
            ActionTarget(
                name=name,
                units={str(k): float(v) for k, v in table["units"].items()},
                key_point=int(table["key_point"]),
                measure=measure,
                direction=direction / np.linalg.norm(direction),
                range_mm=None if low_high is None else (float(low_high[0]), float(low_high[1])),
                source=str(table.get("source", "")),
                in_rig=bool(table.get("in_rig", True)),
                other=int(table["other"]) if "other" in table else None,
            )
        )
    return targets


def _verdict(target: ActionTarget, value: float, along: float) -> str:
    if not target.in_rig:
        return "not in rig"
    if along <= 0.0:
        return "opposite"
    if target.range_mm is None:
        return "no range"
    low, high = target.range_mm
    return "below" if value < low else "above" if value > high else "within"


def measure_actions(
    rig, targets: list[ActionTarget] | None = None, book=None, material=None
) -> list[ActionResult]:
    """Each target's action played alone from rest on ``rig``'s LR mesh → results (mm);
    ``material`` the tissue parameters (``sim.simulator.Material``; None: the default)."""
    from .performances import load_performance_book, unit_activations
    from .playback import HeadPlayer

    targets = load_action_targets() if targets is None else targets
    book = load_performance_book() if book is None else book
    player = HeadPlayer(rig, tolerance=TOLERANCE, max_iterations=MAX_ITERATIONS, material=material)
    rest = rig.ict_rest_positions.astype(np.float64)
    results = []
    for target in targets:
        player.reset()
        activations = unit_activations(book, target.units)
        positions = player.play(0, Controls(activations=activations)).positions.astype(np.float64)
        moved_mm = 10.0 * (positions[target.key_point] - rest[target.key_point])
        along = float(moved_mm @ target.direction)
        if target.measure == "along":
            value = along
        elif target.measure == "magnitude":
            value = float(np.linalg.norm(moved_mm))
        else:
            before = np.linalg.norm(rest[target.key_point] - rest[target.other])
            after = np.linalg.norm(positions[target.key_point] - positions[target.other])
            value = 10.0 * float(after - before)
            along = -value  # closer is the published direction of a gap
        results.append(ActionResult(target, value, along, moved_mm, _verdict(target, value, along)))
    return results


def full_strength_inversions(rig, material=None) -> tuple[int, int]:
    """(inverted elements, elements) of the LR mesh with every muscle at 1 and the jaw at
    its opening limit, solved to ``TOLERANCE``."""
    from .playback import HeadPlayer
    from .tetmesh import signed_volumes

    player = HeadPlayer(rig, tolerance=TOLERANCE, max_iterations=MAX_ITERATIONS, material=material)
    controls = Controls(
        activations={name: 1.0 for name in rig.muscle_names},
        jaw=JawPose(opening_deg=JAW_LIMITS["opening_deg"][1]),
    )
    volume = player.play(0, controls).result.volume_positions
    volumes = signed_volumes(volume, rig.lr.tets)
    return int((volumes <= 0.0).sum()), int(len(volumes))


def format_actions(results: list[ActionResult]) -> str:
    """The calibration table as text (mm)."""
    row = "{:<18} {:<10} {:<10} {:>7}  {:<12} {}"
    lines = [row.format("action", "units", "measure", "rig mm", "published mm", "verdict")]
    for r in results:
        t = r.target
        published = "-" if t.range_mm is None else f"{t.range_mm[0]:g}-{t.range_mm[1]:g}"
        units = "+".join(t.units)
        lines.append(
            row.format(t.name, units, t.measure, f"{r.value_mm:.2f}", published, r.verdict)
        )
    return "\n".join(lines)


__all__ = [
    "ActionResult",
    "ActionTarget",
    "format_actions",
    "full_strength_inversions",
    "load_action_targets",
    "measure_actions",
]
