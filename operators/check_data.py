"""Operator: read the data folder as the rig build would and report every problem."""

import bpy

from ..blender.preferences import data_folder_setting
from ..sim.cache import check_cache_folder
from ..sim.data_paths import find_data_folder
from ..sim.errors import PhysFaceError
from ..sim.face_model import check_data_folder


class PHYSFACE_OT_check_data(bpy.types.Operator):
    """Check that the data folder holds the ICT-FaceKit face model"""

    bl_idname = "physface.check_data"
    bl_label = "Check Data Folder"

    def execute(self, context):
        setting = data_folder_setting(context)
        try:
            folder = find_data_folder(setting)
        except PhysFaceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        problems = check_data_folder(setting) + check_cache_folder()
        for problem in problems:
            self.report({"ERROR"}, problem)
        if problems:
            return {"CANCELLED"}
        self.report({"INFO"}, f"PhysFace data: every file of {folder.ict_source} reads")
        return {"FINISHED"}


classes = (PHYSFACE_OT_check_data,)
register, unregister = bpy.utils.register_classes_factory(classes)
