"""Property groups on a PhysFace head object: muscle sliders, jaw pose, simulation settings.

The sliders are properties of the head object (``object.physface``), so they keyframe,
show in the graph editor and take drivers. The muscle group is built from the muscle file
at registration (names only; no face model, torch or warp is loaded).
"""

import bpy

from ..sim.anatomy import JAW_LIMITS
from ..sim.muscles import muscle_catalogue
from ..sim.tolerances import PLAYBACK_TOLERANCE
from . import live

# The slider runs 0–1; a value typed or driven past 1 (up to this) reaches the playback
# pipeline, which clamps it to 1 and says so in the panel (DESIGN.md, "Controls").
ACTIVATION_HARD_MAX = 2.0


def _on_control_changed(self, context):
    """A control changed: re-simulate the current frame."""
    live.request_update(self.id_data)


def _muscle_update(name: str):
    def update(self, context):
        live.mirror_muscle_edit(self.id_data, name)
        live.request_update(self.id_data)

    return update


def _on_settings_changed(self, context):
    live.forget_head(self.id_data)
    live.request_update(self.id_data)


def _on_skin_changed(self, context):
    """Fine/coarse or the model changed: the player keeps its simulation, swaps its skin."""
    live.request_update(self.id_data)


def _muscle_property(entry):
    return bpy.props.FloatProperty(
        name=entry.name.replace("_", " ").title().replace(" L", " (L)").replace(" R", " (R)"),
        description=(
            f"{entry.description} FACS {', '.join(entry.action_units)}. Activation 0–1 "
            "(a typed or driven value above 1 plays as 1, with a warning in the panel)"
        ),
        min=0.0,
        max=ACTIVATION_HARD_MAX,
        soft_min=0.0,
        soft_max=1.0,
        default=0.0,
        subtype="FACTOR",
        update=_muscle_update(entry.name),
    )


def _activation_group_class():
    annotations = {entry.name: _muscle_property(entry) for entry in muscle_catalogue()}
    return type(
        "PHYSFACE_PG_activations",
        (bpy.types.PropertyGroup,),
        {"__annotations__": annotations, "__doc__": "Muscle activations, 0–1"},
    )


PHYSFACE_PG_activations = _activation_group_class()

PRESET_ITEMS = (
    ("tiny", "Tiny", "Coarse lattice for quick tests (~2k elements)"),
    ("default", "Default", "Real time on a laptop CPU (~13k elements)"),
    ("paper", "Paper", "Park et al. 2024 resolution (~73k elements); needs a fast machine"),
)


SKIN_ITEMS = (
    ("FINE", "Fine", "The network upsamples each coarse frame to the fine simulation's detail"),
    ("COARSE", "Coarse", "The skin embedded in the coarse lattice (fastest)"),
)


class PHYSFACE_PG_head(bpy.types.PropertyGroup):
    is_head: bpy.props.BoolProperty(name="PhysFace head", default=False, options={"HIDDEN"})
    role: bpy.props.StringProperty(
        name="Role", description="head, teeth or eyes", default="", options={"HIDDEN"}
    )
    activations: bpy.props.PointerProperty(type=PHYSFACE_PG_activations)
    mirror: bpy.props.BoolProperty(
        name="Mirror",
        description="Editing a left or right muscle sets its twin on the other side too",
        default=False,
    )
    jaw_opening: bpy.props.FloatProperty(
        name="Opening",
        description="Jaw opening about the temporomandibular hinge, degrees",
        min=JAW_LIMITS["opening_deg"][0],
        max=JAW_LIMITS["opening_deg"][1],
        default=0.0,
        update=_on_control_changed,
    )
    jaw_lateral: bpy.props.FloatProperty(
        name="Lateral",
        description="Sideways jaw shift toward the subject's left (+) or right (−), mm",
        min=JAW_LIMITS["lateral_mm"][0],
        max=JAW_LIMITS["lateral_mm"][1],
        default=0.0,
        update=_on_control_changed,
    )
    jaw_protrusion: bpy.props.FloatProperty(
        name="Protrusion",
        description="Forward jaw thrust, mm",
        min=JAW_LIMITS["protrusion_mm"][0],
        max=JAW_LIMITS["protrusion_mm"][1],
        default=0.0,
        update=_on_control_changed,
    )
    live: bpy.props.BoolProperty(
        name="Live",
        description="Simulate on every frame change (off: play the bake, or nothing)",
        default=True,
        update=_on_control_changed,
    )
    rig_preset: bpy.props.EnumProperty(
        name="Rig",
        description="Resolution of the simulation lattice",
        items=PRESET_ITEMS,
        default="default",
        update=_on_settings_changed,
    )
    tolerance: bpy.props.FloatProperty(
        name="Tolerance",
        description="Relative residual at which the solver stops (smaller: slower, exacter)",
        min=1e-6,
        max=0.1,
        default=PLAYBACK_TOLERANCE,
        precision=5,
        update=_on_settings_changed,
    )
    max_iterations: bpy.props.IntProperty(
        name="Max Iterations",
        description="Upper bound on solver iterations per frame",
        min=1,
        max=500,
        default=30,
        update=_on_settings_changed,
    )
    dynamics: bpy.props.BoolProperty(
        name="Dynamics",
        description="Inertia and damping (backward Euler at the scene frame rate)",
        default=False,
        update=_on_settings_changed,
    )
    gravity: bpy.props.BoolProperty(
        name="Gravity",
        description="Gravity on the flesh in the head's current orientation",
        default=False,
        update=_on_control_changed,
    )
    skin_stage: bpy.props.EnumProperty(
        name="Skin",
        description="How the render skin follows the coarse simulation",
        items=SKIN_ITEMS,
        default="FINE",
        update=_on_skin_changed,
    )
    model_path: bpy.props.StringProperty(
        name="Model",
        description=(
            "Network model for the fine skin: a folder with model.onnx and model.npz made by "
            "python -m physface train for this head's rig. Empty: the model that ships with "
            "PhysFace for the rig"
        ),
        subtype="FILE_PATH",
        default="",
        update=_on_skin_changed,
    )
    bake_path: bpy.props.StringProperty(
        name="Bake File",
        description="Point cache (PC2) of the last bake, relative to the .blend",
        default="",
    )
    bake_skin: bpy.props.StringProperty(
        name="Baked Skin",
        description="The skin stage that made the bake (fine or coarse)",
        default="",
    )
    bake_model: bpy.props.StringProperty(
        name="Baked Model",
        description="The network model (folder and LR lattice key) that made a fine bake",
        default="",
    )
    last_error: bpy.props.StringProperty(name="Error", default="", options={"SKIP_SAVE"})
    skin_in_use: bpy.props.StringProperty(
        name="Skin in Use",
        description="The skin the last played frame used (fine · model, or coarse)",
        default="",
        options={"SKIP_SAVE"},
    )
    skin_note: bpy.props.StringProperty(
        name="Skin Note",
        description="Why the fine skin is not playing (missing or foreign model)",
        default="",
        options={"SKIP_SAVE"},
    )
    last_warning: bpy.props.StringProperty(
        name="Warning",
        description="Control warnings of the last played frame (clamped values)",
        default="",
        options={"SKIP_SAVE"},
    )
    simulation_ms: bpy.props.FloatProperty(name="Simulation", default=0.0, options={"SKIP_SAVE"})
    simulation_wait_ms: bpy.props.FloatProperty(
        name="Simulation Wait",
        description="Of the simulation's time, what the frame waited (the rest ran beside the "
        "last frame's skin)",
        default=0.0,
        options={"SKIP_SAVE"},
    )
    skin_ms: bpy.props.FloatProperty(name="Skin", default=0.0, options={"SKIP_SAVE"})
    eyelids_ms: bpy.props.FloatProperty(name="Eyelids", default=0.0, options={"SKIP_SAVE"})
    write_ms: bpy.props.FloatProperty(name="Write", default=0.0, options={"SKIP_SAVE"})
    iterations: bpy.props.IntProperty(name="Iterations", default=0, options={"SKIP_SAVE"})
    residual: bpy.props.FloatProperty(name="Residual", default=0.0, options={"SKIP_SAVE"})


classes = (PHYSFACE_PG_activations, PHYSFACE_PG_head)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Object.physface = bpy.props.PointerProperty(type=PHYSFACE_PG_head)


def unregister():
    del bpy.types.Object.physface
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
