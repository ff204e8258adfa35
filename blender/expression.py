"""Expression presets on a head's sliders: set them (one simulation) and keyframe them."""

from __future__ import annotations

from ..sim.expressions import EXPRESSIONS
from .heads import muscle_names
from .live import batch_edit

EXPRESSION_ITEMS = tuple((name, name.title(), f"Set the {name} expression") for name in EXPRESSIONS)


def apply_expression(head, name: str, keyframe_frame: int | None = None) -> None:
    """Set the head's sliders to an expression; keyframe them at a frame when given."""
    from ..sim.expressions import expression

    chosen = expression(name)
    with batch_edit(head):
        _set_sliders(head, chosen, keyframe_frame)


def _set_sliders(head, chosen, keyframe_frame: int | None) -> None:
    props = head.physface
    for muscle in muscle_names(head):
        setattr(props.activations, muscle, chosen.activations.get(muscle, 0.0))
    props.jaw_opening = chosen.jaw.opening_deg
    props.jaw_lateral = chosen.jaw.lateral_mm
    props.jaw_protrusion = chosen.jaw.protrusion_mm
    if keyframe_frame is not None:
        keyframe_controls(head, keyframe_frame)


def keyframe_controls(head, frame: int) -> None:
    """Insert keyframes for every muscle slider and the jaw pose at a frame."""
    for muscle in muscle_names(head):
        head.keyframe_insert(f"physface.activations.{muscle}", frame=frame)
    for jaw in ("jaw_opening", "jaw_lateral", "jaw_protrusion"):
        head.keyframe_insert(f"physface.{jaw}", frame=frame)
