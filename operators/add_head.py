"""Add ▸ Mesh ▸ PhysFace Head: the head, teeth and eyes objects and their rig."""

import bpy

from ..panels.preferences import data_folder_setting
from ..panels.properties import PRESET_ITEMS
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
        from ..sim.face_model import load_face_model
        from ..sim.rig import load_rig
        from . import head_mesh, live

        window_manager = context.window_manager
        stages = iter(range(1, 100))

        def progress(stage: str) -> None:
            window_manager.progress_update(next(stages))
            if context.workspace is not None:
                context.workspace.status_text_set(f"PhysFace: building the rig — {stage}")

        data = data_folder_setting(context)
        window_manager.progress_begin(0, 8)
        try:
            model = load_face_model(data)
            load_rig(self.rig_preset, data, progress=progress, with_hr=False)
        except PhysFaceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        finally:
            window_manager.progress_end()
            if context.workspace is not None:
                context.workspace.status_text_set(None)
        head = head_mesh.create_head_objects(context, model)
        with live.batch_edit(head, update=False):
            head.physface.rig_preset = self.rig_preset
        for obj in context.selected_objects:
            obj.select_set(False)
        head.select_set(True)
        context.view_layer.objects.active = head
        live.update_head(head, context.scene.frame_current)
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
