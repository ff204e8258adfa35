"""Headless snapshots: numpy meshes rendered to PNG from fixed views, and contact sheets.

Plain functions over bpy, registering nothing: the picture commands and the demo call them.
Positions are centimetres in the ICT frame (+Y up, the face looks toward +Z, +X is the
subject's left); one centimetre is one Blender unit. Each call builds its own scene and
removes every block it made, so the open file is left as it was.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..sim.images import as_uint8, draw_text, read_png, text_height, write_png

VIEW_YAW_DEGREES = {"front": 0.0, "three_quarter": -45.0, "side": -90.0}
"""Turn of the camera about +Y from the front (camera on +Z): side is from the subject's right."""

ENGINES = {
    "CYCLES": ("CYCLES",),
    "BLENDER_WORKBENCH": ("BLENDER_WORKBENCH",),
    "BLENDER_EEVEE": ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"),
    "BLENDER_EEVEE_NEXT": ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"),
}
"""Engines accepted by ``render_views`` and the identifiers tried for each (EEVEE was renamed)."""

BACKGROUND_SRGB = (0.16, 0.17, 0.19)
LABEL_STRIP_SRGB = (0.08, 0.08, 0.09)
FRAME_MARGIN = 1.08
TUBE_SIDES = 6
TUBE_RADIUS_PIXELS = 0.9

# Suns in the camera frame (x right, y up, z toward the camera): direction to the light,
# strength (W/m²), angular diameter (degrees).
_LIGHTS = (
    ("key", (-0.55, 0.55, 0.75), 2.2, 30.0),
    ("fill", (0.8, -0.1, 0.55), 0.7, 60.0),
    ("rim", (0.35, 0.6, -0.75), 1.5, 20.0),
)
_AMBIENT = 0.25


@dataclass
class SnapshotMesh:
    """A mesh to draw: surface triangles, wire edges, or both.

    positions (V, 3) float cm; triangles (F, 3) int or None; edges (E, 2) int or None, drawn
    as tubes of radius ``edge_radius`` cm (None: about one pixel). Colours are sRGB display values
    in [0, 1], as in a colour picker: ``color`` RGBA for the whole mesh, or ``vertex_colors``
    (V, 3 or 4). ``alpha`` < 1 makes the surface see-through (skin over muscles and bones).
    Vertices that no triangle or edge uses are left out, also from the framing, so a subset
    of a larger mesh can pass the full positions array.
    """

    positions: np.ndarray
    triangles: np.ndarray | None
    edges: np.ndarray | None = None
    color: tuple = (0.8, 0.8, 0.8, 1.0)
    vertex_colors: np.ndarray | None = None
    alpha: float = 1.0
    smooth: bool = True
    edge_radius: float | None = None


def render_views(
    meshes: Sequence[SnapshotMesh],
    out_dir: str | os.PathLike,
    name: str,
    views: Sequence[str] = ("front", "side"),
    resolution: tuple[int, int] = (800, 800),
    samples: int = 16,
    engine: str = "CYCLES",
) -> list[Path]:
    """Render ``meshes`` from each view to ``<out_dir>/<name>_<view>.png``; return the paths.

    Views are ``front`` (from +Z), ``side`` (from the subject's right, -X) and
    ``three_quarter``; an orthographic camera frames the bounding box of all meshes.
    resolution (width, height) pixels. Engines: ``CYCLES`` (CPU path tracing with
    OpenImageDenoise; the default), ``BLENDER_WORKBENCH`` (studio-lit OpenGL, a fraction of
    a second a view; see-through only when no mesh has vertex colours) and ``BLENDER_EEVEE``
    (``BLENDER_EEVEE_NEXT`` also accepted; over a minute a view on software OpenGL).
    """
    meshes = list(meshes)
    if not meshes:
        raise ValueError("render_views needs at least one mesh")
    unknown = [view for view in views if view not in VIEW_YAW_DEGREES]
    if unknown:
        raise ValueError(f"unknown views {unknown}; known: {sorted(VIEW_YAW_DEGREES)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {sorted(ENGINES)}")
    width, height = (int(size) for size in resolution)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    drawn = [_drawn_part(mesh, f"{name}_{index}") for index, mesh in enumerate(meshes)]
    all_positions = np.concatenate([positions for positions, *_ in drawn])
    low, high = all_positions.min(axis=0), all_positions.max(axis=0)
    center = (low + high) / 2.0
    pixel_size = FRAME_MARGIN * float(np.max(high - low)) / min(width, height)

    made: list[bpy.types.ID] = []
    scene = bpy.data.scenes.new(f"PhysFace snapshot {name}")
    try:
        vertex_colored = any(mesh.vertex_colors is not None for mesh in meshes)
        _set_up_scene(scene, made, width, height, samples, engine, vertex_colored)
        for index, (mesh, part) in enumerate(zip(meshes, drawn, strict=True)):
            radius = mesh.edge_radius or TUBE_RADIUS_PIXELS * pixel_size
            _add_mesh(scene, made, f"{name}_{index}", part, mesh.smooth, radius)
        rig, camera = _add_camera_rig(scene, made, center)
        paths = []
        for view in views:
            _aim(rig, camera, all_positions, center, view, width / height)
            paths.append(_render_still(scene, out_dir / f"{name}_{view}.png"))
        return paths
    finally:
        bpy.data.batch_remove(made)
        bpy.data.scenes.remove(scene)


def contact_sheet(
    image_paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    columns: int,
    labels: Sequence[str] | None = None,
) -> Path:
    """Tile PNG images row by row into one PNG, each cell the size of the largest image.

    ``columns`` is capped at the number of images; smaller images are centred in their cell.
    ``labels`` (one per image) are written in white on a strip above each cell. Returns
    ``out_path``.
    """
    image_paths = [Path(path) for path in image_paths]
    if not image_paths:
        raise ValueError("contact_sheet needs at least one image")
    if labels is not None and len(labels) != len(image_paths):
        raise ValueError(f"{len(labels)} labels for {len(image_paths)} images")
    columns = max(1, min(int(columns), len(image_paths)))
    rows = math.ceil(len(image_paths) / columns)
    tiles = [_rgba(read_png(path)) for path in image_paths]
    cell_h = max(tile.shape[0] for tile in tiles)
    cell_w = max(tile.shape[1] for tile in tiles)
    label_h = max(14, cell_h // 14) if labels else 0
    row_h = cell_h + label_h

    sheet = np.empty((rows * row_h, columns * cell_w, 4), dtype=np.uint8)
    sheet[...] = as_uint8((*BACKGROUND_SRGB, 1.0))
    scale = max(1, int(label_h * 0.6) // text_height(1))
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top = row * row_h + label_h + (cell_h - tile.shape[0]) // 2
        left = column * cell_w + (cell_w - tile.shape[1]) // 2
        sheet[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
        if labels:
            strip = sheet[
                row * row_h : row * row_h + label_h, column * cell_w : (column + 1) * cell_w
            ]
            strip[...] = as_uint8((*LABEL_STRIP_SRGB, 1.0))
            baseline = (label_h - text_height(scale)) // 2
            draw_text(strip, 3 * scale, baseline, str(labels[index]), (255, 255, 255, 255), scale)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(sheet, out_path)


# --- Scene ------------------------------------------------------------------------------------


def _set_up_scene(scene, made, width, height, samples, engine, vertex_colored: bool) -> None:
    """Render settings, colour management and a plain world for one snapshot scene.

    Workbench colours by material (which can be see-through) unless a mesh has vertex
    colours; then every mesh is drawn opaque from its colour attribute.
    """
    render = scene.render
    render.engine = _engine_identifier(scene, engine)
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.film_transparent = False
    render.use_file_extension = True
    settings = render.image_settings
    settings.file_format = "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "8"
    settings.compression = 15
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"

    if render.engine == "CYCLES":
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.samples = max(1, int(samples))
        cycles.use_adaptive_sampling = False
        cycles.use_denoising = True
        cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.denoising_input_passes = "RGB_ALBEDO_NORMAL"
        cycles.denoising_prefilter = "FAST"
        cycles.denoising_quality = "BALANCED"
        cycles.max_bounces = 3
        cycles.diffuse_bounces = 1
        cycles.glossy_bounces = 1
        cycles.transmission_bounces = 0
        cycles.volume_bounces = 0
        cycles.transparent_max_bounces = 16
        cycles.use_light_tree = False
        cycles.caustics_reflective = cycles.caustics_refractive = False
    elif render.engine == "BLENDER_WORKBENCH":
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "VERTEX" if vertex_colored else "MATERIAL"
        shading.show_specular_highlight = True
        scene.display.render_aa = "8"
    else:
        scene.eevee.taa_render_samples = max(1, int(samples))

    world = bpy.data.worlds.new(f"{scene.name} world")
    made.append(world)
    background = _srgb_to_linear(np.array(BACKGROUND_SRGB))
    world.color = background
    nodes = world.node_tree.nodes
    nodes.clear()
    output = nodes.new("ShaderNodeOutputWorld")
    light_path = nodes.new("ShaderNodeLightPath")
    seen = nodes.new("ShaderNodeBackground")
    seen.inputs["Color"].default_value = (*background, 1.0)
    ambient = nodes.new("ShaderNodeBackground")
    ambient.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    ambient.inputs["Strength"].default_value = _AMBIENT
    mix = nodes.new("ShaderNodeMixShader")
    links = world.node_tree.links
    links.new(light_path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    links.new(ambient.outputs["Background"], mix.inputs[1])
    links.new(seen.outputs["Background"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    scene.world = world


def _engine_identifier(scene, engine: str) -> str:
    """The identifier of ``engine`` that this Blender accepts (EEVEE was renamed in 4.2/5.0)."""
    for identifier in ENGINES[engine]:
        try:
            scene.render.engine = identifier
        except TypeError:
            continue
        return identifier
    raise ValueError(f"render engine {engine!r} is not available in this Blender")


def _add_camera_rig(scene, made, center: np.ndarray):
    """An empty at ``center`` carrying the orthographic camera and three suns; (rig, camera)."""
    from mathutils import Vector

    rig = bpy.data.objects.new("snapshot rig", None)
    made.append(rig)
    scene.collection.objects.link(rig)
    rig.location = center.tolist()
    rig.rotation_mode = "XYZ"

    camera_data = bpy.data.cameras.new("snapshot camera")
    made.append(camera_data)
    camera_data.type = "ORTHO"
    camera = bpy.data.objects.new("snapshot camera", camera_data)
    made.append(camera)
    scene.collection.objects.link(camera)
    camera.parent = rig
    scene.camera = camera

    for light_name, direction, strength, angle in _LIGHTS:
        light_data = bpy.data.lights.new(f"snapshot {light_name}", "SUN")
        made.append(light_data)
        light_data.energy = strength
        light_data.angle = math.radians(angle)
        light = bpy.data.objects.new(f"snapshot {light_name}", light_data)
        made.append(light)
        scene.collection.objects.link(light)
        light.parent = rig
        light.rotation_mode = "QUATERNION"
        light.rotation_quaternion = Vector(direction).normalized().to_track_quat("Z", "Y")
    return rig, camera


def _aim(rig, camera, positions: np.ndarray, center: np.ndarray, view: str, aspect: float):
    """Turn the rig to ``view`` and fit the orthographic frame to ``positions`` (N, 3) cm."""
    yaw = math.radians(VIEW_YAW_DEGREES[view])
    rig.rotation_euler = (0.0, yaw, 0.0)
    cos, sin = math.cos(yaw), math.sin(yaw)
    rotation = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
    local = (positions - center) @ rotation
    low, high = local.min(axis=0), local.max(axis=0)
    extent = np.maximum(high - low, 1e-6) * FRAME_MARGIN
    depth = float(high[2] - low[2]) + float(extent.max())
    width = float(extent[0]) * max(1.0, 1.0 / aspect)
    height = float(extent[1]) * max(1.0, aspect)
    camera.data.ortho_scale = max(width, height)
    camera.data.clip_start = 0.01 * depth
    camera.data.clip_end = 2.0 * depth
    middle = (low + high) / 2.0
    camera.location = (float(middle[0]), float(middle[1]), float(high[2]) + 0.5 * depth)


def _render_still(scene, path: Path) -> Path:
    """Render the scene's camera to ``path`` through a temporary file in the same folder."""
    temp_path = _temp_path(path)
    scene.render.filepath = str(temp_path)
    try:
        bpy.ops.render.render(write_still=True, scene=scene.name)
        if not temp_path.exists():
            raise RuntimeError(f"Blender rendered nothing to {temp_path}")
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)
    return path


# --- Meshes -----------------------------------------------------------------------------------


def _checked_positions(mesh: SnapshotMesh) -> np.ndarray:
    positions = np.asarray(mesh.positions, dtype=np.float32)
    if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) == 0:
        raise ValueError(f"positions must be (V, 3) with V > 0, not {positions.shape}")
    if not np.isfinite(positions).all():
        raise ValueError("positions hold NaN or infinite values")
    return positions


def _checked_indices(indices, width: int, vertex_count: int, what: str) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int32)
    if indices.ndim != 2 or indices.shape[1] != width:
        raise ValueError(f"{what} must be ({what[0].upper()}, {width}), not {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= vertex_count):
        raise ValueError(f"{what} index vertices outside 0..{vertex_count - 1}")
    return indices


def _vertex_rgba(mesh: SnapshotMesh, vertex_count: int) -> np.ndarray:
    """(V, 4) float32 sRGB colours with the mesh alpha folded in."""
    if mesh.vertex_colors is None:
        rgba = np.tile(np.asarray(mesh.color, dtype=np.float32)[:4], (vertex_count, 1))
        if rgba.shape[1] == 3:
            rgba = np.concatenate([rgba, np.ones((vertex_count, 1), np.float32)], axis=1)
    else:
        colors = np.asarray(mesh.vertex_colors, dtype=np.float32)
        if colors.shape not in ((vertex_count, 3), (vertex_count, 4)):
            raise ValueError(f"vertex_colors must be ({vertex_count}, 3 or 4), not {colors.shape}")
        rgba = np.ones((vertex_count, 4), dtype=np.float32)
        rgba[:, : colors.shape[1]] = colors
    rgba[:, 3] *= mesh.alpha
    return np.clip(rgba, 0.0, 1.0)


def _tubes(positions, rgba, edges, radius: float):
    """Open prisms of ``TUBE_SIDES`` sides along edges -> positions, rgba, triangles."""
    start, end = positions[edges[:, 0]], positions[edges[:, 1]]
    axis = end - start
    length = np.linalg.norm(axis, axis=1, keepdims=True)
    keep = length[:, 0] > 1e-9
    start, end, axis, edges = start[keep], end[keep], axis[keep] / length[keep], edges[keep]
    helper = np.where(np.abs(axis[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(axis, u)
    angles = np.linspace(0.0, 2.0 * np.pi, TUBE_SIDES, endpoint=False)
    ring = radius * (
        np.cos(angles)[None, :, None] * u[:, None] + np.sin(angles)[None, :, None] * v[:, None]
    )
    tube_positions = np.stack([start[:, None] + ring, end[:, None] + ring], axis=1)  # (E, 2, S, 3)
    tube_rgba = np.repeat(rgba[edges][:, :, None], TUBE_SIDES, axis=2)  # (E, 2, S, 4)

    side = np.arange(TUBE_SIDES)
    after = (side + 1) % TUBE_SIDES
    quads = np.stack([side, after, TUBE_SIDES + after, TUBE_SIDES + side], axis=1)
    per_edge = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    offsets = (np.arange(len(edges)) * 2 * TUBE_SIDES)[:, None, None]
    triangles = (per_edge[None] + offsets).reshape(-1, 3)
    return tube_positions.reshape(-1, 3), tube_rgba.reshape(-1, 4), triangles


def _drawn_part(mesh: SnapshotMesh, label: str):
    """Checked arrays of the vertices that triangles or edges use, renumbered from 0.

    Returns positions (U, 3) float32, rgba (U, 4) sRGB, triangles (F, 3) or None and
    edges (E, 2) or None; unused vertices neither show nor count in the framing.
    """
    positions = _checked_positions(mesh)
    vertex_count = len(positions)
    triangles = edges = None
    if mesh.triangles is not None:
        triangles = _checked_indices(mesh.triangles, 3, vertex_count, "triangles")
    if mesh.edges is not None:
        edges = _checked_indices(mesh.edges, 2, vertex_count, "edges")
    indices = [part.ravel() for part in (triangles, edges) if part is not None]
    used = np.unique(np.concatenate(indices)) if indices else np.empty(0, dtype=np.int32)
    if used.size == 0:
        raise ValueError(f"mesh {label} has neither triangles nor edges to draw")
    renumber = np.full(vertex_count, -1, dtype=np.int32)
    renumber[used] = np.arange(len(used), dtype=np.int32)
    rgba = _vertex_rgba(mesh, vertex_count)[used]
    return (
        positions[used],
        rgba,
        None if triangles is None else renumber[triangles],
        None if edges is None else renumber[edges],
    )


def _add_mesh(scene, made, name: str, drawn, smooth: bool, edge_radius: float) -> None:
    """Create the object, its mesh with a point colour attribute, and its material."""
    positions, rgba, triangles, edges = drawn
    parts = []
    if triangles is not None and len(triangles):
        parts.append((positions, rgba, triangles))
    if edges is not None and len(edges):
        parts.append(_tubes(positions.astype(np.float64), rgba, edges, edge_radius))

    all_positions, all_rgba, all_triangles, offset = [], [], [], 0
    for part_positions, part_rgba, part_triangles in parts:
        all_positions.append(part_positions)
        all_rgba.append(part_rgba)
        all_triangles.append(part_triangles + offset)
        offset += len(part_positions)
    vertices = np.concatenate(all_positions).astype(np.float32)
    triangles = np.concatenate(all_triangles).astype(np.int32)
    colors = np.concatenate(all_rgba).astype(np.float32)

    data = bpy.data.meshes.new(name)
    made.append(data)
    data.vertices.add(len(vertices))
    data.vertices.foreach_set("co", vertices.ravel())
    data.loops.add(triangles.size)
    data.loops.foreach_set("vertex_index", triangles.ravel())
    data.polygons.add(len(triangles))
    data.polygons.foreach_set("loop_start", np.arange(0, triangles.size, 3, dtype=np.int32))
    data.update(calc_edges=True)
    if smooth:
        data.shade_smooth()
    else:
        data.shade_flat()
    attribute = data.color_attributes.new("snapshot_color", "FLOAT_COLOR", "POINT")
    attribute.data.foreach_set("color_srgb", colors.ravel())
    data.color_attributes.active_color = attribute
    data.color_attributes.render_color_index = data.color_attributes.active_color_index

    material = _material(name, attribute.name, colors.mean(axis=0), made)
    data.materials.append(material)
    obj = bpy.data.objects.new(name, data)
    made.append(obj)
    scene.collection.objects.link(obj)


def _material(name: str, attribute_name: str, mean_rgba: np.ndarray, made) -> bpy.types.Material:
    """Principled BSDF coloured by the point colour attribute, whose alpha is the opacity.

    mean_rgba (4,) sRGB becomes the viewport colour that Workbench draws.
    """
    material = bpy.data.materials.new(name)
    made.append(material)
    alpha = float(mean_rgba[3])
    material.diffuse_color = (*_srgb_to_linear(mean_rgba[:3]), alpha)
    nodes = material.node_tree.nodes
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    shader = nodes.new("ShaderNodeBsdfPrincipled")
    shader.inputs["Roughness"].default_value = 0.55
    color = nodes.new("ShaderNodeVertexColor")
    color.layer_name = attribute_name
    links = material.node_tree.links
    links.new(color.outputs["Color"], shader.inputs["Base Color"])
    if alpha < 1.0:
        links.new(color.outputs["Alpha"], shader.inputs["Alpha"])
        material.surface_render_method = "BLENDED"
    links.new(shader.outputs["BSDF"], output.inputs["Surface"])
    return material


# --- Images -----------------------------------------------------------------------------------


def _srgb_to_linear(srgb: np.ndarray) -> tuple:
    srgb = np.asarray(srgb, dtype=np.float64)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return tuple(float(value) for value in linear)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def _rgba(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3 or 4) uint8 image as RGBA."""
    if image.shape[2] == 4:
        return image
    return np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], axis=2)
