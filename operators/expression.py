"""Expression presets: set (and optionally keyframe) a head's sliders to an expression."""

import bpy

from ..blender.expression import EXPRESSION_ITEMS, apply_expression
from ..blender.heads import poll_active_head


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
        return poll_active_head(cls, context)

    def execute(self, context):
        frame = context.scene.frame_current if self.keyframe else None
        apply_expression(context.active_object, self.expression, frame)
        return {"FINISHED"}


classes = (PHYSFACE_OT_expression,)
register, unregister = bpy.utils.register_classes_factory(classes)
