"""Expression presets: set (and optionally keyframe) a head's sliders to an expression."""

import bpy

from ..sim.expressions import EXPRESSIONS
from . import live

EXPRESSION_ITEMS = tuple((name, name.title(), f"Set the {name} expression") for name in EXPRESSIONS)


def muscle_action_units() -> dict[str, tuple[str, ...]]:
    from ..sim.muscles import muscle_catalogue

    return {entry.name: entry.action_units for entry in muscle_catalogue()}


def apply_expression(head, name: str, keyframe_frame: int | None = None) -> None:
    """Set the head's sliders to an expression; keyframe them at a frame when given."""
    from ..sim.expressions import expression
    from .live import batch_edit

    chosen = expression(name, muscle_action_units())
    with batch_edit(head):
        _set_sliders(head, chosen, keyframe_frame)


def _set_sliders(head, chosen, keyframe_frame: int | None) -> None:
    from .live import muscle_names

    props = head.physface
    muscles = muscle_names(head)
    for muscle in muscles:
        setattr(props.activations, muscle, chosen.activations.get(muscle, 0.0))
    props.jaw_opening = chosen.jaw.opening_deg
    props.jaw_lateral = chosen.jaw.lateral_mm
    props.jaw_protrusion = chosen.jaw.protrusion_mm
    if keyframe_frame is not None:
        keyframe_controls(head, keyframe_frame)


def keyframe_controls(head, frame: int) -> None:
    """Insert keyframes for every muscle slider and the jaw pose at a frame."""
    from .live import muscle_names

    for muscle in muscle_names(head):
        head.keyframe_insert(f"physface.activations.{muscle}", frame=frame)
    for jaw in ("jaw_opening", "jaw_lateral", "jaw_protrusion"):
        head.keyframe_insert(f"physface.{jaw}", frame=frame)


class PHYSFACE_OT_expression(bpy.types.Operator):
    """Set the head's muscle and jaw sliders to an expression"""

    bl_idname = "physface.expression"
    bl_label = "Expression"
    bl_options = {"REGISTER", "UNDO"}

    expression: bpy.props.EnumProperty(name="Expression", items=EXPRESSION_ITEMS)
    keyframe: bpy.props.BoolProperty(
        name="Keyframe", description="Also insert keyframes at the current frame", default=False
    )

    @classmethod
    def poll(cls, context):
        return live.poll_active_head(cls, context)

    def execute(self, context):
        frame = context.scene.frame_current if self.keyframe else None
        apply_expression(context.active_object, self.expression, frame)
        return {"FINISHED"}


classes = (PHYSFACE_OT_expression,)
register, unregister = bpy.utils.register_classes_factory(classes)
