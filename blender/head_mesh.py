"""Blender meshes of the ICT head: head (skin, sockets, lashes), teeth and eyes objects.

Converts the face model's arrays into Blender data at the edge: vertices (cm, ICT frame;
the object's transform turns ICT +Y-up centimetres into Blender +Z-up metres), polygons,
UVs, materials, the ``physface_ict`` vertex attribute that maps each Blender vertex to its
ICT vertex, and the Basis + PhysFace shape keys that playback writes into.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from .heads import ICT_ATTRIBUTE, SHAPE_KEY

PARTS = {
    "head": ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right",
             "eyelashes_left", "eyelashes_right"),
    "teeth": ("gums_tongue", "teeth"),
    "eyes": ("eyeball_left", "eyeball_right"),
}  # fmt: skip
# (material name, base colour, roughness, subsurface weight) and the regions that use it.
# Colours are scene-linear albedos: the skin's is a mid-tone (sRGB ≈ 181, 142, 121; between
# the ColorChecker's light and dark skin patches).
MATERIALS = {
    "PhysFace Skin": ((0.46, 0.27, 0.19, 1), 0.45, 1.0, ("face", "head_neck")),
    "PhysFace Mouth": ((0.55, 0.22, 0.22, 1), 0.35, 0.1, ("mouth_socket", "gums_tongue")),
    "PhysFace Socket": ((0.45, 0.30, 0.28, 1), 0.5, 0.0, ("eye_socket_left", "eye_socket_right")),
    "PhysFace Lashes": ((0.04, 0.03, 0.03, 1), 0.6, 0.0, ("eyelashes_left", "eyelashes_right")),
    "PhysFace Teeth": ((0.92, 0.89, 0.80, 1), 0.3, 0.0, ("teeth",)),
    "PhysFace Eye": ((0.80, 0.77, 0.73, 1), 0.4, 0.0, ("eyeball_left", "eyeball_right")),
}
# Skin scatters red light a few millimetres and blue well under one (Jensen et al. 2001):
# per-channel mean free path (relative) and its scale in world metres (Blender's default
# scale, 0.05 m, lets red light wander 5 cm: a waxy, washed-out head).
SUBSURFACE_RADIUS = (1.0, 0.35, 0.2)
SUBSURFACE_SCALE = 0.004
# ICT's eyelashes are poly strips for an alpha-masked lash texture, three stacked strips
# per lid. Their UVs share one tile (u 6..7): the left eye's lashes take u fraction
# 0.5..1 from the inner to the outer corner, the right eye's 0..0.5 from the outer to the
# inner corner; in v six bands of 1/6, the lower lid's three strips then the upper's, each
# running from the lash tips (fract(6 v) ≈ 0.09) to the roots on the lid margin (≈ 0.93).
LASH_MATERIAL = "PhysFace Lashes"
LASH_ROOT, LASH_TIP = 0.93, 0.09
# Per lid (upper, lower): strands per strip, share of them drawn, longest strand as a share
# of the strip, root half-width as a share of the strand spacing, and root opacity.
LASH_STRANDS = ((50, 1.0, 1.0, 0.18, 1.0), (24, 0.55, 0.6, 0.10, 0.75))
# Each ICT eyeball is an outer shell (the README's "sclera" rows: sclera with the corneal
# bulge) enclosing an inner iris-and-eyeball surface (its "iris" rows) that lies wholly
# inside it, so with an opaque shell only the outer one is ever seen. The outer shell's UVs
# are an azimuthal layout centred (0.5, 0.5) on the cornea apex whose radius grows with the
# angle from the eye's axis, and the cornea meets the inner iris disc at a UV radius of
# about 0.12 (≈ 22°, an 11.6 mm iris): the eye material paints the iris and pupil there.
EYE_MATERIAL = "PhysFace Eye"
IRIS_UV_RADIUS = 0.12
# Base colour over the distance from the cornea apex in iris radii (0 centre, 1 limbus):
# pupil, iris (lighter collarette, darker outer iris and limbal ring) and sclera.
EYE_COLOUR_STOPS = (
    (0.00, (0.004, 0.004, 0.004)),
    (0.30, (0.004, 0.004, 0.004)),
    (0.36, (0.33, 0.20, 0.08)),
    (0.55, (0.22, 0.14, 0.06)),
    (0.86, (0.12, 0.08, 0.04)),
    (0.98, (0.035, 0.028, 0.022)),
    (1.10, (0.80, 0.77, 0.73)),
)


def _material(name: str):
    material = bpy.data.materials.get(name)
    if material is not None:
        return material
    colour, roughness, subsurface, _ = MATERIALS[name]
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    bsdf = material.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = colour
    bsdf.inputs["Roughness"].default_value = roughness
    if "Subsurface Weight" in bsdf.inputs:
        bsdf.inputs["Subsurface Weight"].default_value = subsurface
        bsdf.inputs["Subsurface Radius"].default_value = SUBSURFACE_RADIUS
        bsdf.inputs["Subsurface Scale"].default_value = SUBSURFACE_SCALE
    if name == EYE_MATERIAL:
        _eye_nodes(material.node_tree, bsdf)
    if name == LASH_MATERIAL:
        _lash_nodes(material.node_tree, bsdf)
        material.surface_render_method = "DITHERED"  # EEVEE: alpha-tested transparency
        material.use_transparent_shadow = True
    material.diffuse_color = colour
    return material


def _eye_nodes(tree, bsdf) -> None:
    """Pupil, iris and sclera from the eyeball's UV radius, under a clear glossy cornea."""
    nodes, links = tree.nodes, tree.links
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = "UVMap"
    offset = nodes.new("ShaderNodeVectorMath")
    offset.operation = "SUBTRACT"
    offset.inputs[1].default_value = (0.5, 0.5, 0.0)
    length = nodes.new("ShaderNodeVectorMath")
    length.operation = "LENGTH"
    outermost = EYE_COLOUR_STOPS[-1][0]
    iris_radii = nodes.new("ShaderNodeMath")  # the ramp spans 0..outermost iris radii
    iris_radii.operation = "DIVIDE"
    iris_radii.inputs[1].default_value = IRIS_UV_RADIUS * outermost
    ramp = nodes.new("ShaderNodeValToRGB")
    elements = ramp.color_ramp.elements
    elements[0].color = (*EYE_COLOUR_STOPS[0][1], 1.0)
    elements[-1].color = (*EYE_COLOUR_STOPS[-1][1], 1.0)
    for position, rgb in EYE_COLOUR_STOPS[1:-1]:
        elements.new(position / outermost).color = (*rgb, 1.0)
    links.new(uv.outputs["UV"], offset.inputs[0])
    links.new(offset.outputs["Vector"], length.inputs[0])
    links.new(length.outputs["Value"], iris_radii.inputs[0])
    links.new(iris_radii.outputs["Value"], ramp.inputs[0])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    # The wet cornea and conjunctiva: a clear, nearly mirror-smooth coat over the whole eye.
    bsdf.inputs["Coat Weight"].default_value = 1.0
    bsdf.inputs["Coat Roughness"].default_value = 0.03
    bsdf.inputs["Coat IOR"].default_value = 1.376
    for column, node in enumerate((uv, offset, length, iris_radii, ramp)):
        node.location = (bsdf.location.x - 1000 + 180 * column, bsdf.location.y)
    ramp.location.x -= 100


def _lash_nodes(tree, bsdf) -> None:
    """Alpha of thin lash strands along the lash strips' UVs, tapering towards the tips."""
    nodes, links = tree.nodes, tree.links
    column = [bsdf.location.x - 300, bsdf.location.y]

    def place(node):
        node.location = tuple(column)
        column[1] -= 160
        if column[1] < bsdf.location.y - 1600:
            column[:] = [column[0] - 200, bsdf.location.y]
        return node

    def op(operation, *inputs, clamp=False):
        node = place(nodes.new("ShaderNodeMath"))
        node.operation, node.use_clamp = operation, clamp
        for socket, value in zip(node.inputs, inputs, strict=False):
            if isinstance(value, (int, float)):
                socket.default_value = value
            else:
                links.new(value, socket)
        return node.outputs[0]

    def random(seed, salt: float):
        node = place(nodes.new("ShaderNodeTexWhiteNoise"))
        node.noise_dimensions = "1D"
        links.new(op("ADD", seed, salt), node.inputs["W"])
        return node.outputs["Value"]

    uv = place(nodes.new("ShaderNodeUVMap"))
    uv.uv_map = "UVMap"
    split = place(nodes.new("ShaderNodeSeparateXYZ"))
    links.new(uv.outputs["UV"], split.inputs[0])
    u, v = split.outputs["X"], split.outputs["Y"]
    half = op("FRACT", op("MULTIPLY", u, 2.0))
    right = op("LESS_THAN", op("FRACT", u), 0.5)
    corner = op("MULTIPLY_ADD", right, op("MULTIPLY_ADD", half, -2.0, 1.0), half)  # 0 in, 1 out
    bands = op("MULTIPLY", v, 6.0)
    band = op("FLOOR", bands)
    tip = op("DIVIDE", op("SUBTRACT", LASH_ROOT, op("FRACT", bands)), LASH_ROOT - LASH_TIP)
    tip = op("MAXIMUM", tip, 0.0)  # 0 at the root, 1 at the strip's far edge
    lower = op("LESS_THAN", band, 2.5)

    def per_lid(index: int):
        upper_value, lower_value = LASH_STRANDS[0][index], LASH_STRANDS[1][index]
        return op("MULTIPLY_ADD", lower, lower_value - upper_value, upper_value)

    # Strand coordinate: one unit per strand, a phase per strip, sweeping outwards at the tips.
    sweep = op("MULTIPLY", tip, op("MULTIPLY", op("SUBTRACT", corner, 0.25), 2.5))
    x = op("ADD", op("MULTIPLY_ADD", corner, per_lid(0), op("MULTIPLY", band, 0.37)), sweep)
    strand = op("ADD", op("FLOOR", x), op("MULTIPLY", band, 97.0))
    centre = op("MULTIPLY_ADD", random(strand, 0.0), 0.4, 0.3)
    distance = op("ABSOLUTE", op("SUBTRACT", op("FRACT", x), centre))
    drawn = op("LESS_THAN", random(strand, 1000.0), per_lid(1))
    # Full length over most of the lid, dying away over the strips' last ~20 % (the upper
    # strips bend down past the eye corners there); each strand 55-100 % of that.
    length = op("MULTIPLY", per_lid(2), op("MULTIPLY_ADD", random(strand, 2000.0), 0.45, 0.55))
    profile = op("SINE", op("MULTIPLY", corner, math.pi))
    profile = op("MULTIPLY_ADD", profile, 3.0, -0.6, clamp=True)
    reach = op("MAXIMUM", op("MULTIPLY", length, profile), 1e-3)
    along = op("DIVIDE", tip, reach)  # 0 at the root, 1 at this strand's tip
    remaining = op("SUBTRACT", 1.0, along, clamp=True)
    inside = op("LESS_THAN", distance, op("MULTIPLY", per_lid(3), remaining))
    fade = op("MULTIPLY", per_lid(4), op("MULTIPLY_ADD", remaining, 0.6, 0.4))
    alpha = op("MULTIPLY", op("MULTIPLY", inside, drawn), fade)
    links.new(alpha, bsdf.inputs["Alpha"])


def _polygon_material_index(model, polygon_first_vertex: np.ndarray, names: list[str]):
    """Material slot (P,) of each polygon from the region of its first vertex."""
    from ..sim.face_model import REGIONS

    index = np.zeros(len(polygon_first_vertex), dtype=np.int32)
    for slot, name in enumerate(names):
        for region in MATERIALS[name][3]:
            start, stop = REGIONS[region]
            index[(polygon_first_vertex >= start) & (polygon_first_vertex < stop)] = slot
    return index


def build_part_mesh(model, part: str, name: str):
    """A Blender mesh of one part of the ICT model, with UVs, materials and shape keys."""
    vertices = np.concatenate([model.region(r) for r in PARTS[part]]).astype(np.int64)
    local = np.full(model.vertex_count, -1, dtype=np.int64)
    local[vertices] = np.arange(len(vertices))
    starts = model.polygon_starts
    counts = np.diff(starts)
    inside = local[model.polygon_vertices] >= 0
    keep = np.logical_and.reduceat(inside, starts[:-1])
    corner_keep = np.repeat(keep, counts)
    loop_vertices = local[model.polygon_vertices[corner_keep]]
    loop_uvs = model.uvs[model.polygon_uvs[corner_keep]]
    kept_counts = counts[keep]
    kept_starts = np.r_[0, np.cumsum(kept_counts)[:-1]]

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", model.neutral[vertices].astype(np.float32).ravel())
    mesh.loops.add(len(loop_vertices))
    mesh.loops.foreach_set("vertex_index", loop_vertices.astype(np.int32))
    mesh.polygons.add(len(kept_counts))
    mesh.polygons.foreach_set("loop_start", kept_starts.astype(np.int32))
    mesh.polygons.foreach_set("loop_total", kept_counts.astype(np.int32))
    mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", loop_uvs.astype(np.float32).ravel())
    names = [n for n, spec in MATERIALS.items() if set(spec[3]) & set(PARTS[part])]
    for material_name in names:
        mesh.materials.append(_material(material_name))
    first_vertex = model.polygon_vertices[starts[:-1][keep]]
    mesh.polygons.foreach_set("material_index", _polygon_material_index(model, first_vertex, names))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(kept_counts), dtype=bool))
    mesh.update(calc_edges=True)
    mesh.validate()
    attribute = mesh.attributes.new(ICT_ATTRIBUTE, "INT", "POINT")
    attribute.data.foreach_set("value", vertices.astype(np.int32))
    return mesh


def create_head_objects(context, model, name: str = "PhysFace Head"):
    """Create the head with teeth and eyes children at the 3D cursor; returns the head."""
    collection = context.collection or context.scene.collection
    head = None
    for part in ("head", "teeth", "eyes"):
        object_name = name if part == "head" else f"{name} {part.title()}"
        mesh = build_part_mesh(model, part, object_name)
        obj = bpy.data.objects.new(object_name, mesh)
        collection.objects.link(obj)
        obj.shape_key_add(name="Basis", from_mix=False)
        obj.shape_key_add(name=SHAPE_KEY, from_mix=False).value = 1.0
        obj.physface.is_head = True
        obj.physface.role = part
        if head is None:
            head = obj
            obj.location = context.scene.cursor.location
            obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
            obj.scale = (0.01, 0.01, 0.01)
        else:
            obj.parent = head
    return head


def add_head(context, rig_preset: str, data_folder=None, progress=None):
    """Load the face model and rig (building the rig on first use), add the head objects
    at the 3D cursor, make the head active and play its current frame; returns the head.
    Its skin is fine when a shipped network model fits the rig, else coarse.

    Raises PhysFaceError when the data or the rig is missing; a playback error of the new
    head is left in its ``last_error`` (as the frame handler does)."""
    from ..nets.skin_stage import model_fits, shipped_model
    from ..sim.face_model import load_face_model
    from ..sim.rig import load_rig
    from . import live

    model = load_face_model(data_folder)
    rig = load_rig(rig_preset, data_folder, progress=progress, with_hr=False)
    head = create_head_objects(context, model)
    with live.batch_edit(head, update=False):
        head.physface.rig_preset = rig_preset
        fits = model_fits(rig, shipped_model(rig_preset))
        head.physface.skin_stage = "FINE" if fits else "COARSE"
    for obj in context.selected_objects:
        obj.select_set(False)
    head.select_set(True)
    context.view_layer.objects.active = head
    live.update_head(head, context.scene.frame_current)
    return head
