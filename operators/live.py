"""Live playback: one persistent frame-change handler simulates every live head.

Per head: simulate the LR lattice (warm-started when the frame advances by one, from rest
after a jump), then the skin stage (positions of every ICT vertex from the lattice), then
a bulk ``foreach_set`` into the "PhysFace" shape key of the head, teeth and eyes objects.
An error in one head is caught, shown in its panel and the status bar, and the others go
on. Torch is never imported here.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import bpy
import numpy as np

SHAPE_KEY = "PhysFace"
ICT_ATTRIBUTE = "physface_ict"
GRAVITY_CM_S2 = 981.0
BLENDER_FROM_ICT = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)

_runtimes: dict[int, HeadRuntime] = {}
_suspended: set[int] = set()  # heads being baked: the handler leaves them alone
_mirroring = False


@dataclass
class HeadRuntime:
    """The live state of one head: its rig, simulator, skin stage and last frame."""

    preset: str
    settings: tuple
    simulator: object
    skin_stage: object
    anatomy: object
    last_frame: int | None = None
    targets: dict = field(default_factory=dict)  # object name -> ICT indices (int64)


def poll_active_head(operator_class, context) -> bool:
    """Operator poll: the active object must be a PhysFace head (says so when not)."""
    obj = context.active_object
    if obj is None or not obj.physface.is_head or obj.physface.role != "head":
        operator_class.poll_message_set("Select a PhysFace head")
        return False
    return True


def head_objects(obj) -> list:
    """The head and its teeth/eyes children that receive positions."""
    return [obj, *[c for c in obj.children if c.physface.role in ("teeth", "eyes")]]


def ict_indices(obj) -> np.ndarray:
    attribute = obj.data.attributes.get(ICT_ATTRIBUTE)
    if attribute is None:
        raise RuntimeError(f"{obj.name} has lost its {ICT_ATTRIBUTE} attribute; add a new head.")
    indices = np.empty(len(obj.data.vertices), dtype=np.int32)
    attribute.data.foreach_get("value", indices)
    return indices.astype(np.int64)


def _settings_of(props) -> tuple:
    return (props.rig_preset, round(props.tolerance, 8), props.max_iterations, props.dynamics)


def runtime_for(obj, data_folder=None) -> HeadRuntime:
    """The head's runtime, built on first use (rig from the cache, simulator, skin stage)."""
    props = obj.physface
    key = obj.session_uid
    settings = _settings_of(props)
    runtime = _runtimes.get(key)
    if runtime is not None and runtime.settings == settings:
        return runtime
    from ..sim.face_model import load_face_model
    from ..sim.rig import load_rig
    from ..sim.simulator import Simulator
    from ..sim.skin_stage import EmbeddedSkinStage

    model = load_face_model(data_folder)
    rig = load_rig(props.rig_preset, data_folder, with_hr=False)
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    simulator = Simulator(
        rig,
        "lr",
        dynamics=props.dynamics,
        time_step=1.0 / fps,
        tolerance=props.tolerance,
        max_iterations=props.max_iterations,
        face_model=model,
    )
    runtime = HeadRuntime(
        props.rig_preset, settings, simulator, EmbeddedSkinStage(rig, model), rig.anatomy
    )
    runtime.targets = {o.name: ict_indices(o) for o in head_objects(obj)}
    _runtimes[key] = runtime
    return runtime


def forget_head(obj) -> None:
    _runtimes.pop(obj.session_uid, None)


def muscle_names(obj) -> list[str]:
    """The muscle slider names of a head (the float properties of its activations)."""
    rna = obj.physface.activations.bl_rna
    return [p.identifier for p in rna.properties if p.type == "FLOAT"]


def controls_of(obj):
    """The head's Controls from its properties (as animated at the current frame)."""
    from ..sim.anatomy import JawPose
    from ..sim.controls import Controls

    props = obj.physface
    activations = {name: float(getattr(props.activations, name)) for name in muscle_names(obj)}
    gravity = None
    if props.gravity:
        world_rotation = np.array(obj.matrix_world.to_3x3().normalized())
        local = (BLENDER_FROM_ICT.T @ world_rotation.T) @ np.array([0.0, 0.0, -GRAVITY_CM_S2])
        gravity = tuple(float(v) for v in local)
    jaw = JawPose(props.jaw_opening, props.jaw_lateral, props.jaw_protrusion)
    return Controls(activations=activations, jaw=jaw, gravity=gravity)


def simulate_frame(obj, frame: int, data_folder=None) -> tuple[np.ndarray, dict]:
    """Simulate one frame of a head: ICT positions (V, 3) float32 cm and timings."""
    from ..sim.controls import validate_controls

    runtime = runtime_for(obj, data_folder)
    simulator = runtime.simulator
    if runtime.last_frame is None or frame != runtime.last_frame + 1:
        if frame != runtime.last_frame:
            simulator.reset()
    controls, _ = validate_controls(controls_of(obj), simulator.rig.muscle_names)
    clock = time.perf_counter()
    result = simulator.step(controls)
    simulated = time.perf_counter()
    jaw = runtime.anatomy.jaw_transform(controls.jaw)
    positions = runtime.skin_stage(result.volume_positions, result.head_transform, jaw)
    skinned = time.perf_counter()
    runtime.last_frame = frame
    timings = {
        "simulation_ms": 1000 * (simulated - clock),
        "skin_ms": 1000 * (skinned - simulated),
        "iterations": result.iterations,
        "residual": result.residual,
    }
    return positions, timings


def write_positions(obj, positions: np.ndarray, runtime: HeadRuntime | None = None) -> None:
    """Write ICT positions (V, 3) cm into the PhysFace shape key of the head objects."""
    runtime = runtime or _runtimes.get(obj.session_uid)
    for target in head_objects(obj):
        indices = runtime.targets[target.name] if runtime else ict_indices(target)
        block = target.data.shape_keys.key_blocks[SHAPE_KEY]
        block.data.foreach_set("co", np.ascontiguousarray(positions[indices], np.float32).ravel())
        target.data.update()


def update_head(obj, frame: int) -> None:
    """Simulate, skin and write one head at a frame; record timings or the error."""
    from ..panels.preferences import data_folder_setting

    props = obj.physface
    try:
        positions, timings = simulate_frame(obj, frame, data_folder_setting(bpy.context))
        clock = time.perf_counter()
        write_positions(obj, positions)
        timings["write_ms"] = 1000 * (time.perf_counter() - clock)
        for name, value in timings.items():
            setattr(props, name, value)
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
    return [
        obj
        for obj in scene.objects
        if obj.physface.is_head and obj.physface.role == "head" and obj.physface.live
        and obj.session_uid not in _suspended
    ]  # fmt: skip


@bpy.app.handlers.persistent
def physface_frame_change(scene, depsgraph=None):
    """The one frame-change handler: update every live head of the scene."""
    for obj in live_heads(scene):
        update_head(obj, scene.frame_current)


def request_update(obj) -> None:
    """A control changed: re-simulate the current frame of this head (if live)."""
    scene = bpy.context.scene
    if scene is None or not obj.physface.live or obj.session_uid in _suspended:
        return
    if obj.physface.role == "head" and obj.name in scene.objects:
        runtime = _runtimes.get(obj.session_uid)
        if runtime is not None:
            runtime.last_frame = scene.frame_current - 1  # warm start from the shown state
        update_head(obj, scene.frame_current)


@contextmanager
def batch_edit(obj, update: bool = True):
    """Set many controls of a head with one simulation at the end (not one per slider)."""
    key = obj.session_uid
    nested = key in _suspended
    _suspended.add(key)
    try:
        yield
    finally:
        if not nested:
            _suspended.discard(key)
            if update:
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
