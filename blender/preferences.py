"""Add-on preferences: the data folder (falls back to PHYSFACE_DATA and ../shared/data)."""

import bpy

ADDON_PACKAGE = __package__.rpartition(".")[0]


class PHYSFACE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    data_folder: bpy.props.StringProperty(
        name="Data folder",
        description=(
            "Folder that contains ICT-FaceKit/ (the FaceXModel folder of the public "
            "ICT-FaceKit repository). Empty: the PHYSFACE_DATA environment variable, "
            "then the shared data folder beside the extension"
        ),
        subtype="DIR_PATH",
        default="",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "data_folder")
        layout.operator("physface.check_data", icon="CHECKMARK")


def data_folder_setting(context) -> str | None:
    """The data folder preference as an absolute path (that says it came from the
    preference, for error messages), or None when unset."""
    from ..sim.data_paths import preference_setting

    addon = context.preferences.addons.get(ADDON_PACKAGE)
    if addon is None or not addon.preferences.data_folder:
        return None
    return preference_setting(bpy.path.abspath(addon.preferences.data_folder))


classes = (PHYSFACE_AP_preferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
