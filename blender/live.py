"""Live playback: one persistent frame-change handler plays every live head.

Per head one ``HeadPlayer`` (``sim/playback.py``: the frame rule, control validation, the
LR step and the skin stage); this module only turns the head's properties into
``Controls`` once per frame and writes the positions it gets back into the "PhysFace"
shape key of the head, teeth and eyes objects with ``foreach_set``. An error in one head
is caught, shown in its panel and the status bar, and the others go on; control warnings
(clamped values) show in the panel too. Torch is never imported here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from .heads import SHAPE_KEY, head_objects, ict_indices, is_head, muscle_names
from .preferences import data_folder_setting

GRAVITY_CM_S2 = 981.0

_runtimes: dict[int, HeadRuntime] = {}
_suspended: set[int] = set()  # heads being edited in bulk or baked: the handler waits
_mirroring = False


@dataclass
class HeadRuntime:
    """The live state of one head: its player, the skin stage it plays and the ICT
    indices of each object. ``skin`` says what the panel shows ("fine · default" or
    "coarse"); ``skin_note`` why a fine skin that was asked for is not playing."""

    settings: tuple
    player: object  # sim.playback.HeadPlayer
    targets: dict[int, np.ndarray] = field(default_factory=dict)  # session_uid -> ICT
    skin_settings: tuple = ()
    skin: str = "coarse"
    skin_note: str = ""
    model: str = ""  # the model folder and key that made the fine skin ("" when coarse)
    stages: dict = field(default_factory=dict)  # skin settings -> (stage, skin, note, model)


def _settings_of(props, fps: float) -> tuple:
    return (
        props.rig_preset, round(props.tolerance, 8), props.max_iterations, props.dynamics, fps
    )  # fmt: skip


def model_folder(props) -> Path:
    """The head's network model: its Model path (folder, model.onnx or model.npz) or,
    when empty, the model that ships with the extension for the head's rig preset."""
    from ..nets.skin_stage import shipped_model

    if props.model_path:
        return Path(bpy.path.abspath(props.model_path))
    return shipped_model(props.rig_preset)


def _skin_settings_of(props) -> tuple:
    return (props.skin_stage, str(model_folder(props)) if props.skin_stage == "FINE" else "")


def _scene_fps() -> float:
    render = bpy.context.scene.render
    return render.fps / render.fps_base


def _network_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _make_skin_stage(rig, props) -> tuple:
    """(stage, skin, note, model) for the head's skin choice. The fine skin falls back to
    the embedded one (stage None) with a note naming the problem and the fix; it never
    raises, so a bad model never stops playback."""
    if props.skin_stage != "FINE":
        return None, "coarse", "", ""
    folder = model_folder(props)
    fix = "choose a model trained on this rig (Skin ▸ Model) or switch the skin to Coarse"
    if not props.model_path and not folder.is_dir():
        note = f"no network model ships for the {props.rig_preset} rig: {fix}"
        return None, "coarse (fallback)", note, ""
    try:
        from ..nets.runtime import ModelError
        from ..nets.skin_stage import NetworkSkinStage

        stage = NetworkSkinStage(rig, folder, threads=_network_threads())
    except ImportError as error:
        note = f"ONNX Runtime cannot be imported ({error}): reinstall the PhysFace extension"
        return None, "coarse (fallback)", note, ""
    except ModelError as error:  # names the file and the fix
        return None, "coarse (fallback)", str(error), ""
    except Exception as error:  # whatever else a model file does: the coarse skin plays
        return None, "coarse (fallback)", f"{folder}: {error}; {fix}", ""
    name = folder.name if props.model_path else f"{props.rig_preset} (shipped)"
    return stage, f"fine · {name}", "", f"{folder} (key {stage.upsampler.key[:12]})"


def _choose_skin(runtime: HeadRuntime, props) -> None:
    """Put the head's chosen skin stage into its player (built once per choice)."""
    settings = _skin_settings_of(props)
    if settings not in runtime.stages:
        runtime.stages[settings] = _make_skin_stage(runtime.player.rig, props)
    stage, runtime.skin, runtime.skin_note, runtime.model = runtime.stages[settings]
    runtime.player.skin_stage = stage if stage is not None else runtime.player.embedded_stage
    runtime.skin_settings = settings


def runtime_for(obj, data_folder=None) -> HeadRuntime:
    """The head's runtime, built on first use or when its settings changed; its skin stage
    swapped (the simulation kept) when only the skin choice changed."""
    props = obj.physface
    fps = _scene_fps()
    settings = _settings_of(props, fps)
    runtime = _runtimes.get(obj.session_uid)
    if runtime is None or runtime.settings != settings:
        from ..sim.playback import HeadPlayer
        from ..sim.rig import load_rig

        rig = load_rig(props.rig_preset, data_folder, with_hr=False)
        player = HeadPlayer(
            rig,
            fps=fps,
            dynamics=props.dynamics,
            tolerance=props.tolerance,
            max_iterations=props.max_iterations,
        )
        targets = {o.session_uid: ict_indices(o) for o in head_objects(obj)}
        same_rig = runtime is not None and runtime.settings[0] == settings[0]
        stages = runtime.stages if same_rig else {}
        runtime = HeadRuntime(settings, player, targets, stages=stages)
        _runtimes[obj.session_uid] = runtime
    if runtime.skin_settings != _skin_settings_of(props):
        _choose_skin(runtime, props)
    return runtime


def skin_of(obj) -> tuple[str, str, str]:
    """(skin, note, model) of the skin the head's last played frame used (its runtime's)."""
    runtime = _runtimes.get(obj.session_uid)
    return ("", "", "") if runtime is None else (runtime.skin, runtime.skin_note, runtime.model)


def forget_head(obj) -> None:
    """Drop the head's player (its rig or settings changed; the next frame rebuilds it)."""
    _runtimes.pop(obj.session_uid, None)


def restart_head(obj) -> None:
    """The head's next frame starts from rest (keeps the player and its factor)."""
    runtime = _runtimes.get(obj.session_uid)
    if runtime is not None:
        runtime.player.reset()


def gravity_in_head_frame(obj) -> tuple[float, float, float]:
    """Blender's gravity (world −Z, 981 cm/s²) in the head's ICT frame.

    The head's vertices are ICT coordinates and its world matrix maps them into Blender
    (an upright head holds the +90° X turn that takes ICT +Y up to Blender +Z), so the
    transpose of that rotation alone takes world vectors into the ICT frame."""
    world_rotation = np.array(obj.matrix_world.to_3x3().normalized(), dtype=np.float64)
    local = world_rotation.T @ np.array([0.0, 0.0, -GRAVITY_CM_S2])
    return tuple(float(v) for v in local)


def controls_of(obj):
    """The head's Controls from its properties (as animated at the current frame)."""
    from ..sim.anatomy import JawPose
    from ..sim.controls import Controls

    props = obj.physface
    activations = {name: float(getattr(props.activations, name)) for name in muscle_names(obj)}
    gravity = gravity_in_head_frame(obj) if props.gravity else None
    jaw = JawPose(props.jaw_opening, props.jaw_lateral, props.jaw_protrusion)
    return Controls(activations=activations, jaw=jaw, gravity=gravity)


def controls_at(obj, frame: int):
    """The head's Controls at another ``frame`` as its action's F-curves give them (the
    rest as they are now), or None when drivers or NLA strips animate the head: the
    player's lookahead guess, which it checks against that frame's own controls, so a
    wrong guess costs time, never a different result."""
    from bpy_extras.anim_utils import action_get_channelbag_for_slot

    controls = controls_of(obj)
    animation = obj.animation_data
    if animation is None:
        return controls
    if animation.drivers or animation.nla_tracks:
        return None
    channels = action_get_channelbag_for_slot(animation.action, animation.action_slot)
    if channels is None:
        return controls
    props, activations, jaw = obj.physface, dict(controls.activations), {}
    for curve in channels.fcurves:
        path = curve.data_path
        if not path.startswith("physface."):
            continue
        owner, _, name = path[len("physface.") :].rpartition(".")
        target = props.activations if owner == "activations" else props
        if owner not in ("", "activations") or name not in target.bl_rna.properties:
            continue
        limits = target.bl_rna.properties[name]
        value = min(max(curve.evaluate(frame), limits.hard_min), limits.hard_max)
        if owner == "activations":
            if name in activations:
                activations[name] = float(np.float32(value))
        elif name in ("jaw_opening", "jaw_lateral", "jaw_protrusion"):
            jaw[name] = float(np.float32(value))
    from ..sim.anatomy import JawPose

    pose = JawPose(
        jaw.get("jaw_opening", props.jaw_opening),
        jaw.get("jaw_lateral", props.jaw_lateral),
        jaw.get("jaw_protrusion", props.jaw_protrusion),
    )
    return type(controls)(activations=activations, jaw=pose, gravity=controls.gravity)


def play_frame(obj, frame: int, data_folder=None):
    """Play one frame of a head under its current properties → ``PlayedFrame``. Playing
    forward (the last frame shown was the one before, and this is not the scene's last),
    the next frame's simulation starts beside this frame's skin (``HeadPlayer.play``)."""
    runtime = runtime_for(obj, data_folder)
    player = runtime.player
    ahead = None
    if player.last_frame == frame - 1 and frame < bpy.context.scene.frame_end:
        ahead = controls_at(obj, frame + 1)
    return player.play(frame, controls_of(obj), ahead)


def positions_by_object(obj, positions: np.ndarray) -> dict[str, np.ndarray]:
    """ICT positions (V, 3) split into each head object's vertices (float32 copies)."""
    runtime = _runtimes.get(obj.session_uid)
    out = {}
    for target in head_objects(obj):
        indices = runtime.targets.get(target.session_uid) if runtime else None
        if indices is None:  # a part added to the head since its runtime was built
            indices = ict_indices(target)
        out[target.name] = np.ascontiguousarray(positions[indices], dtype=np.float32)
    return out


def write_positions(obj, positions: np.ndarray) -> None:
    """Write ICT positions (V, 3) cm into the PhysFace shape key of the head objects."""
    by_object = positions_by_object(obj, positions)
    for target in head_objects(obj):
        block = target.data.shape_keys.key_blocks[SHAPE_KEY]
        block.data.foreach_set("co", by_object[target.name].ravel())
        target.data.update()


def update_head(obj, frame: int) -> None:
    """Play and write one head at a frame; record timings, warnings or the error."""
    props = obj.physface
    try:
        played = play_frame(obj, frame, data_folder_setting(bpy.context))
        clock = time.perf_counter()
        write_positions(obj, played.positions)
        timings = dict(played.timings, write_ms=1000 * (time.perf_counter() - clock))
        for name in (
            "simulation_ms",
            "simulation_wait_ms",
            "skin_ms",
            "eyelids_ms",
            "write_ms",
            "iterations",
            "residual",
        ):
            setattr(props, name, timings[name])
        props.skin_in_use, props.skin_note, _ = skin_of(obj)
        props.last_warning = "; ".join(played.warnings)
        props.last_error = ""
    except Exception as error:  # one head's failure must not stop the others
        forget_head(obj)
        message = f"PhysFace head {obj.name}: {error}"
        try:
            props.last_error = str(error)
        except AttributeError:
            pass
        print(message, file=sys.stderr)
        _status(message)


def _status(message: str) -> None:
    for window in getattr(bpy.context.window_manager, "windows", []):
        if window.workspace is not None:
            window.workspace.status_text_set(message)


def live_heads(scene) -> list:
    """The heads the handler plays: live and not suspended."""
    return [
        obj
        for obj in scene.objects
        if is_head(obj) and obj.physface.live and obj.session_uid not in _suspended
    ]


@bpy.app.handlers.persistent
def physface_frame_change(scene, depsgraph=None):
    """The one frame-change handler: update every live head of the scene."""
    for obj in live_heads(scene):
        update_head(obj, scene.frame_current)


def request_update(obj) -> None:
    """A control changed: play the current frame of this head again (if live)."""
    scene = bpy.context.scene
    if scene is None or not obj.physface.live or obj.session_uid in _suspended:
        return
    if is_head(obj) and obj.name in scene.objects:
        update_head(obj, scene.frame_current)


def is_suspended(obj) -> bool:
    return obj.session_uid in _suspended


@contextmanager
def suspended(obj) -> Iterator[None]:
    """Keep the handler and slider updates off this head inside the block (nests)."""
    key = obj.session_uid
    nested = key in _suspended
    _suspended.add(key)
    try:
        yield
    finally:
        if not nested:
            _suspended.discard(key)


@contextmanager
def batch_edit(obj, update: bool = True) -> Iterator[None]:
    """Set many controls of a head with one simulation at the end (not one per slider)."""
    nested = is_suspended(obj)
    with suspended(obj):
        yield
    if update and not nested:
        request_update(obj)


def mirror_muscle_edit(head, name: str) -> None:
    """With mirror on, copy a left/right muscle's value to its twin."""
    global _mirroring
    props = head.physface
    if _mirroring or not props.mirror or name[-2:] not in ("_L", "_R"):
        return
    twin = name[:-2] + ("_R" if name.endswith("_L") else "_L")
    if not hasattr(props.activations, twin):
        return
    _mirroring = True
    try:
        setattr(props.activations, twin, getattr(props.activations, name))
    finally:
        _mirroring = False


def register():
    if physface_frame_change not in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.append(physface_frame_change)


def unregister():
    while physface_frame_change in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.remove(physface_frame_change)
    _runtimes.clear()
    _suspended.clear()
