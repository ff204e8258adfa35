"""The PhysFace tab in the 3D view's sidebar (N-panel) for the active head.

Draws properties and helpers of ``blender/``; buttons name operators by their id string.
"""

import bpy

from ..blender.bake import bake_problem
from ..blender.expression import EXPRESSION_ITEMS
from ..blender.heads import active_head
from ..sim.muscles import GROUPS, muscle_catalogue


def _alert(layout, text: str, icon: str) -> None:
    box = layout.box()
    box.alert = icon == "ERROR"
    box.label(text=text, icon=icon)


class _PhysFacePanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "PhysFace"

    @classmethod
    def poll(cls, context):
        return active_head(context) is not None


class VIEW3D_PT_physface(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "PhysFace"
    bl_label = "PhysFace"

    def draw(self, context):
        layout = self.layout
        head = active_head(context)
        if head is None:
            layout.label(text="No PhysFace head selected")
            layout.operator("physface.add_head", icon="ADD")
            return
        props = head.physface
        layout.label(text=head.name, icon="USER")
        if props.last_error:
            _alert(layout, props.last_error, "ERROR")
        problem = bake_problem(head, [context.scene.frame_current])
        if problem is not None:
            _alert(layout, f"Bake: {problem.message}", "ERROR")
        if props.skin_note:
            _alert(layout, f"Fine skin off: {props.skin_note}", "ERROR")
        if props.last_warning:
            _alert(layout, props.last_warning, "INFO")
        row = layout.row(align=True)
        row.prop(props, "live", toggle=True, icon="PLAY")
        row.prop(props, "mirror", toggle=True, icon="MOD_MIRROR")
        col = layout.column(align=True)
        waited = props.simulation_wait_ms
        beside = f" ({waited:.1f} waited)" if waited < props.simulation_ms - 0.05 else ""
        col.label(text=f"Simulation {props.simulation_ms:.1f} ms{beside} · {props.iterations} it")
        col.label(text=f"Skin {props.skin_in_use} {props.skin_ms:.1f} ms")
        col.label(text=f"Eyelids {props.eyelids_ms:.1f} ms")
        col.label(text=f"Write {props.write_ms:.1f} ms")


class VIEW3D_PT_physface_skin(_PhysFacePanel, bpy.types.Panel):
    bl_label = "Skin"
    bl_parent_id = "VIEW3D_PT_physface"

    def draw(self, context):
        props = active_head(context).physface
        layout = self.layout
        layout.row().prop(props, "skin_stage", expand=True)
        col = layout.column()
        col.active = props.skin_stage == "FINE"
        col.prop(props, "model_path", placeholder=f"shipped model ({props.rig_preset})")


class VIEW3D_PT_physface_expressions(_PhysFacePanel, bpy.types.Panel):
    bl_label = "Expressions"
    bl_parent_id = "VIEW3D_PT_physface"

    def draw(self, context):
        grid = self.layout.grid_flow(columns=3, align=True)
        for name, label, _ in EXPRESSION_ITEMS:
            grid.operator("physface.expression", text=label).expression = name
        op = self.layout.operator("physface.expression", text="Keyframe Current", icon="KEY_HLT")
        op.keyframe = True
        op.expression = "neutral"


class VIEW3D_PT_physface_jaw(_PhysFacePanel, bpy.types.Panel):
    bl_label = "Jaw"
    bl_parent_id = "VIEW3D_PT_physface"

    def draw(self, context):
        props = active_head(context).physface
        col = self.layout.column(align=True)
        col.prop(props, "jaw_opening", text="Opening (°)")
        col.prop(props, "jaw_lateral", text="Lateral (mm)")
        col.prop(props, "jaw_protrusion", text="Protrusion (mm)")


def _group_panel(group: str):
    names = [entry.name for entry in muscle_catalogue() if entry.group == group]

    def draw(self, context):
        activations = active_head(context).physface.activations
        layout = self.layout
        paired = [n for n in names if n.endswith("_L")]
        for name in paired:
            row = layout.row(align=True)
            row.label(text=name[:-2].replace("_", " ").title())
            row.prop(activations, name, text="L", slider=True)
            row.prop(activations, name[:-2] + "_R", text="R", slider=True)
        for name in names:
            if name[-2:] not in ("_L", "_R"):
                layout.prop(activations, name, text=name.replace("_", " ").title(), slider=True)

    return type(
        f"VIEW3D_PT_physface_muscles_{group}",
        (_PhysFacePanel, bpy.types.Panel),
        {
            "bl_label": f"Muscles: {group.title()}",
            "bl_parent_id": "VIEW3D_PT_physface",
            "bl_options": {"DEFAULT_CLOSED"},
            "draw": draw,
        },
    )


class VIEW3D_PT_physface_simulation(_PhysFacePanel, bpy.types.Panel):
    bl_label = "Simulation"
    bl_parent_id = "VIEW3D_PT_physface"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        props = active_head(context).physface
        col = self.layout.column()
        col.prop(props, "rig_preset")
        col.prop(props, "tolerance")
        col.prop(props, "max_iterations")
        col.prop(props, "dynamics")
        col.prop(props, "gravity")


class VIEW3D_PT_physface_bake(_PhysFacePanel, bpy.types.Panel):
    bl_label = "Bake"
    bl_parent_id = "VIEW3D_PT_physface"

    def draw(self, context):
        props = active_head(context).physface
        layout = self.layout
        row = layout.row(align=True)
        row.operator("physface.bake", icon="REC").target = "POINT_CACHE"
        row.operator("physface.bake", text="To Shape Keys").target = "SHAPE_KEYS"
        layout.operator("physface.clear_bake", icon="X")
        if props.bake_path:
            layout.label(text=props.bake_path, icon="FILE_CACHE")
        if props.bake_skin:
            layout.label(text=f"Baked with the {props.bake_skin} skin", icon="INFO")
            if props.bake_model:
                layout.label(text=props.bake_model)


classes = (
    VIEW3D_PT_physface,
    VIEW3D_PT_physface_skin,
    VIEW3D_PT_physface_expressions,
    VIEW3D_PT_physface_jaw,
    *(_group_panel(group) for group in GROUPS),
    VIEW3D_PT_physface_simulation,
    VIEW3D_PT_physface_bake,
)
register, unregister = bpy.utils.register_classes_factory(classes)
