"""Bake a head's simulation over a frame range into a point cache or per-frame shape keys.

Every frame is simulated first and held in memory; only a finished bake is written, each
file to a temporary name and then renamed over the old one, so a cancelled or failed bake
leaves the previous bake byte-identical. PC2 files live in ``//physface_bake/`` beside the
.blend and are read back by a Mesh Cache modifier (path relative to the .blend), so the
saved file plays the bake without the rig.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import bpy
import numpy as np

from ..panels.preferences import data_folder_setting
from . import live

MODIFIER = "PhysFace Bake"
BAKE_FOLDER = "physface_bake"


class BakeCancelled(Exception):
    """The artist cancelled the bake (Esc); nothing was written."""


def simulate_range(
    scene,
    head,
    frames: range,
    should_cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Simulate frames (from rest at the first) → {object name: (F, V, 3) float32 cm}."""
    data = data_folder_setting(bpy.context)
    targets = live.head_objects(head)
    out = {
        obj.name: np.empty((len(frames), len(obj.data.vertices), 3), np.float32) for obj in targets
    }
    current = scene.frame_current
    key = head.session_uid
    live._suspended.add(key)
    live.forget_head(head)
    try:
        for i, frame in enumerate(frames):
            if should_cancel is not None and should_cancel():
                raise BakeCancelled(f"bake of {head.name} cancelled at frame {frame}")
            scene.frame_set(frame)
            positions, _ = live.simulate_frame(head, frame, data)
            runtime = live.runtime_for(head, data)
            for obj in targets:
                out[obj.name][i] = positions[runtime.targets[obj.name]]
            if progress is not None:
                progress(i + 1, len(frames))
    finally:
        live._suspended.discard(key)
        scene.frame_set(current)
    return out


def bake_file(blend_dir: Path, obj) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in obj.name)
    return blend_dir / BAKE_FOLDER / f"{safe}.pc2"


def write_point_caches(head, baked: dict[str, np.ndarray], start: int) -> None:
    """Write one PC2 per object atomically and point a Mesh Cache modifier at it."""
    from ..sim.pc2 import write_pc2

    if not bpy.data.filepath:
        raise RuntimeError("Save the .blend first: the bake is stored beside it.")
    blend_dir = Path(bpy.path.abspath("//"))
    targets = live.head_objects(head)
    staged: list[tuple[Path, Path]] = []
    try:  # every file is written before any is replaced: all of the bake or none of it
        for obj in targets:
            path = bake_file(blend_dir, obj)
            staging = path.with_name(f".{path.name}.staged")
            write_pc2(staging, baked[obj.name], start_frame=float(start))
            staged.append((staging, path))
        for staging, path in staged:
            os.replace(staging, path)
    finally:
        for staging, _ in staged:
            staging.unlink(missing_ok=True)
    for obj in targets:
        path = bake_file(blend_dir, obj)
        modifier = obj.modifiers.get(MODIFIER) or obj.modifiers.new(MODIFIER, "MESH_CACHE")
        modifier.cache_format = "PC2"
        modifier.filepath = bpy.path.relpath(str(path))
        modifier.frame_start = float(start)
        modifier.time_mode = "FRAME"
        modifier.play_mode = "SCENE"
        modifier.show_viewport = modifier.show_render = True
    head.physface.bake_path = bpy.path.relpath(str(bake_file(blend_dir, head)))
    head.physface.live = False


def write_shape_keys(head, baked: dict[str, np.ndarray], start: int) -> None:
    """One shape key per frame ("PhysFace 0001" …), keyframed to show on its frame only."""
    for obj in live.head_objects(head):
        keys = obj.data.shape_keys
        for block in [b for b in keys.key_blocks if b.name.startswith(f"{live.SHAPE_KEY} ")]:
            obj.shape_key_remove(block)
        for i, positions in enumerate(baked[obj.name]):
            frame = start + i
            block = obj.shape_key_add(name=f"{live.SHAPE_KEY} {frame:04d}", from_mix=False)
            block.data.foreach_set("co", positions.ravel())
            for value, at in ((0.0, frame - 1), (1.0, frame), (0.0, frame + 1)):
                block.value = value
                block.keyframe_insert("value", frame=at)
        keys.key_blocks[live.SHAPE_KEY].value = 0.0
    head.physface.live = False


class PHYSFACE_OT_bake(bpy.types.Operator):
    """Simulate the frame range and store it (Esc cancels and keeps the previous bake)"""

    bl_idname = "physface.bake"
    bl_label = "Bake"
    bl_options = {"REGISTER"}

    frame_start: bpy.props.IntProperty(name="Start", default=-1, description="-1: scene start")
    frame_end: bpy.props.IntProperty(name="End", default=-1, description="-1: scene end")
    target: bpy.props.EnumProperty(
        name="Into",
        items=(
            ("POINT_CACHE", "Point Cache", "A PC2 file read by a Mesh Cache modifier"),
            ("SHAPE_KEYS", "Shape Keys", "One shape key per frame, stored in the .blend"),
        ),
        default="POINT_CACHE",
    )

    @classmethod
    def poll(cls, context):
        return live.poll_active_head(cls, context)

    def _frames(self, scene) -> range:
        start = scene.frame_start if self.frame_start < 0 else self.frame_start
        end = scene.frame_end if self.frame_end < 0 else self.frame_end
        return range(start, end + 1)

    def _finish(self, context, baked, frames) -> set[str]:
        head = context.active_object
        try:
            if self.target == "POINT_CACHE":
                write_point_caches(head, baked, frames.start)
            else:
                write_shape_keys(head, baked, frames.start)
        except (OSError, RuntimeError) as error:
            self.report({"ERROR"}, f"Bake not written ({error}); the previous bake is intact.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Baked {len(frames)} frames of {head.name}")
        return {"FINISHED"}

    def execute(self, context):
        frames = self._frames(context.scene)
        if not len(frames):
            self.report({"ERROR"}, "The frame range is empty")
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, len(frames))
        try:
            baked = simulate_range(
                context.scene, context.active_object, frames,
                progress=lambda done, total: wm.progress_update(done),
            )  # fmt: skip
        except Exception as error:
            self.report({"ERROR"}, f"Bake failed ({error}); the previous bake is intact.")
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        return self._finish(context, baked, frames)

    def invoke(self, context, event):
        self._cancel = False
        self._frames_to_do = self._frames(context.scene)
        if not len(self._frames_to_do):
            self.report({"ERROR"}, "The frame range is empty")
            return {"CANCELLED"}
        self._head = context.active_object
        self._baked = {o.name: [] for o in live.head_objects(self._head)}
        self._index = 0
        self._original_frame = context.scene.frame_current
        live._suspended.add(self._head.session_uid)
        live.forget_head(self._head)
        context.window_manager.progress_begin(0, len(self._frames_to_do))
        self._timer = context.window_manager.event_timer_add(0.001, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _end_modal(self, context):
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        live._suspended.discard(self._head.session_uid)
        context.scene.frame_set(self._original_frame)
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC":
            self._end_modal(context)
            self.report({"WARNING"}, "Bake cancelled; the previous bake is intact.")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        frames = self._frames_to_do
        frame = frames[self._index]
        try:
            context.scene.frame_set(frame)
            data = data_folder_setting(context)
            positions, _ = live.simulate_frame(self._head, frame, data)
            runtime = live.runtime_for(self._head, data)
            for name, store in self._baked.items():
                store.append(positions[runtime.targets[name]].copy())
        except Exception as error:
            self._end_modal(context)
            self.report({"ERROR"}, f"Bake failed at frame {frame} ({error}); nothing was written.")
            return {"CANCELLED"}
        self._index += 1
        context.window_manager.progress_update(self._index)
        if context.workspace is not None:
            context.workspace.status_text_set(
                f"PhysFace: baking frame {frame} ({self._index}/{len(frames)}) — Esc cancels"
            )
        if self._index < len(frames):
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        baked = {name: np.stack(store) for name, store in self._baked.items()}
        return self._finish(context, baked, frames)


class PHYSFACE_OT_clear_bake(bpy.types.Operator):
    """Remove the bake's modifiers and go back to live simulation (files stay on disk)"""

    bl_idname = "physface.clear_bake"
    bl_label = "Clear Bake"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.physface.is_head and obj.physface.role == "head"

    def execute(self, context):
        head = context.active_object
        for obj in live.head_objects(head):
            modifier = obj.modifiers.get(MODIFIER)
            if modifier is not None:
                obj.modifiers.remove(modifier)
            keys = obj.data.shape_keys
            for block in [b for b in keys.key_blocks if b.name.startswith(f"{live.SHAPE_KEY} ")]:
                obj.shape_key_remove(block)
            keys.key_blocks[live.SHAPE_KEY].value = 1.0
        head.physface.bake_path = ""
        head.physface.live = True
        return {"FINISHED"}


classes = (PHYSFACE_OT_bake, PHYSFACE_OT_clear_bake)
register, unregister = bpy.utils.register_classes_factory(classes)
