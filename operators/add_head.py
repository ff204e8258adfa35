"""Add ▸ Mesh ▸ PhysFace Head: the head, teeth and eyes objects and their rig."""

import bpy

from ..blender.head_mesh import add_head
from ..blender.preferences import data_folder_setting
from ..blender.properties import PRESET_ITEMS
from ..sim.errors import PhysFaceError


class PHYSFACE_OT_add_head(bpy.types.Operator):
    """Add a physically simulated head (ICT face model with skull, jaw and muscles)"""

    bl_idname = "physface.add_head"
    bl_label = "PhysFace Head"
    bl_options = {"REGISTER", "UNDO"}

    rig_preset: bpy.props.EnumProperty(
        name="Rig", description="Resolution of the simulation lattice", items=PRESET_ITEMS,
        default="default",
    )  # fmt: skip

    @classmethod
    def poll(cls, context):
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode to add a head")
            return False
        return True

    def execute(self, context):
        window_manager = context.window_manager
        stages = iter(range(1, 100))

        def progress(stage: str) -> None:
            window_manager.progress_update(next(stages))
            if context.workspace is not None:
                context.workspace.status_text_set(f"PhysFace: building the rig — {stage}")

        window_manager.progress_begin(0, 8)
        try:
            head = add_head(context, self.rig_preset, data_folder_setting(context), progress)
        except PhysFaceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        finally:
            window_manager.progress_end()
            if context.workspace is not None:
                context.workspace.status_text_set(None)
        if head.physface.last_error:
            self.report({"WARNING"}, f"Head added, but: {head.physface.last_error}")
        return {"FINISHED"}


def menu_add(self, context):
    self.layout.operator(PHYSFACE_OT_add_head.bl_idname, icon="USER")


classes = (PHYSFACE_OT_add_head,)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.VIEW3D_MT_mesh_add.append(menu_add)


def unregister():
    bpy.types.VIEW3D_MT_mesh_add.remove(menu_add)
    _unregister()
