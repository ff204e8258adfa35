"""Operator: validate the data folder and say what is missing and where to get it."""

import bpy

from ..blender.preferences import data_folder_setting
from ..sim.data_paths import find_data_folder
from ..sim.errors import PhysFaceError


class PHYSFACE_OT_check_data(bpy.types.Operator):
    """Check that the data folder holds the ICT-FaceKit face model"""

    bl_idname = "physface.check_data"
    bl_label = "Check Data Folder"

    def execute(self, context):
        try:
            folder = find_data_folder(data_folder_setting(context))
        except PhysFaceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"PhysFace data: face model found at {folder.ict_source}")
        return {"FINISHED"}


classes = (PHYSFACE_OT_check_data,)
register, unregister = bpy.utils.register_classes_factory(classes)
