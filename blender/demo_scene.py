"""The demo scene: a PhysFace head performing expressions, a camera and studio lights.

Shared by ``python -m physface demo``; built only from the add-on's own operators, so it
exercises exactly what an artist uses. ``coarse_and_fine`` replays the performance to
compare the two skins on the same coarse frames.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from ..sim.eyelids import EyelidLayer
from . import live
from .expression import apply_expression, keyframe_controls

# (frame, expression, extra jaw opening in degrees for speech-like motion): ~2.3 s at 24
# fps, ending on a blink (closed at frame 53, three frames down and three up: 125 ms).
PERFORMANCE = (
    (1, "neutral", 0.0),
    (10, "smile", 0.0),
    (18, "smile", 6.0),
    (26, "surprise", 0.0),
    (34, "anger", 0.0),
    (42, "pain", 2.0),
    (50, "neutral", 0.0),
    (53, "blink", 0.0),
    (56, "neutral", 0.0),
)
BLINK_FRAMES = (50, 51, 52, 53, 54, 55)


def new_demo_scene(rig_preset: str = "default"):
    """Factory-fresh file with a head (added by the operator), camera and lights."""
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    scene = bpy.context.scene
    scene.render.fps = 24
    scene.frame_start, scene.frame_end = PERFORMANCE[0][0], PERFORMANCE[-1][0]
    result = bpy.ops.physface.add_head(rig_preset=rig_preset)
    if result != {"FINISHED"}:
        raise RuntimeError("the PhysFace head could not be added")
    head = bpy.context.active_object
    _add_camera_and_lights(scene)
    return head


def keyframe_performance(head) -> None:
    """Keyframe the expression presets (and extra jaw motion) of PERFORMANCE."""
    for frame, name, jaw_extra in PERFORMANCE:
        apply_expression(head, name, keyframe_frame=None)
        head.physface.jaw_opening = head.physface.jaw_opening + jaw_extra
        keyframe_controls(head, frame)


def _add_camera_and_lights(scene) -> None:
    camera_data = bpy.data.cameras.new("PhysFace Camera")
    camera_data.lens = 85.0
    camera = bpy.data.objects.new("PhysFace Camera", camera_data)
    scene.collection.objects.link(camera)
    camera.location = (0.0, -0.95, 0.02)
    camera.rotation_euler = (math.radians(90), 0.0, 0.0)
    scene.camera = camera
    # Watts for a key + fill that put ~3 W/m² (white diffuse radiance ≈ 1) on the lit side of
    # the face, so the skin's albedo lands in the tone curve's mid-range rather than its
    # desaturating shoulder.
    for name, location, energy, size in (
        ("Key", (-0.45, -0.6, 0.35), 6.0, 0.35),
        ("Fill", (0.55, -0.5, 0.05), 1.8, 0.6),
        ("Rim", (0.2, 0.5, 0.4), 5.0, 0.3),
    ):
        light_data = bpy.data.lights.new(name, "AREA")
        light_data.energy = energy
        light_data.size = size
        light = bpy.data.objects.new(name, light_data)
        scene.collection.objects.link(light)
        light.location = location
        direction = -light.location.normalized()
        light.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    world = bpy.data.worlds.new("PhysFace World")
    world.color = (0.05, 0.055, 0.06)
    if world.node_tree is not None:
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.055, 0.06, 1)
    scene.world = world
    scene.render.resolution_x = scene.render.resolution_y = 800


def coarse_and_fine(head, frames: range) -> tuple[np.ndarray, np.ndarray, list]:
    """Replay the head's animation over ``frames`` (from rest at the first, as a bake does)
    with its fine skin; returns the coarse (embedded) and fine (network) skins, each with
    its eyelid layer, of the same
    coarse frames, each (F, V, 3) float32 cm of every ICT vertex, and the controls per
    frame. Raises RuntimeError when the head's fine skin is not playing (its note says why)."""
    scene = bpy.context.scene
    shown = scene.frame_current
    runtime = live.runtime_for(head)
    player = runtime.player
    if player.skin_stage is player.embedded_stage:
        raise RuntimeError(f"{head.name} has no fine skin: {runtime.skin_note or 'coarse chosen'}")
    coarse, fine, controls = [], [], []
    coarse_lids = EyelidLayer(player.rig) if player.rig.lids is not None else None
    player.reset()
    with live.suspended(head):
        for frame in frames:
            scene.frame_set(frame)
            controls.append(live.controls_of(head))
            played = player.play(frame, controls[-1])
            fine.append(played.positions.copy())
            result = played.result
            skin = player.embedded_stage(
                result.volume_positions, result.head_transform, result.jaw_transform
            ).copy()
            if coarse_lids is not None:
                skin = coarse_lids(skin, result.head_transform, played.activations)
            coarse.append(skin)
    player.reset()
    scene.frame_set(shown)
    return np.stack(coarse), np.stack(fine), controls
