"""Bake and Clear Bake: thin shells over ``blender.bake`` (Esc cancels a bake)."""

from __future__ import annotations

import bpy

from ..blender import bake
from ..blender.heads import is_head, poll_active_head


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
        return poll_active_head(cls, context)

    def _frames(self, scene) -> range:
        start = scene.frame_start if self.frame_start < 0 else self.frame_start
        end = scene.frame_end if self.frame_end < 0 else self.frame_end
        return range(start, end + 1)

    def _finish(self, run) -> set[str]:
        head, frames = run.head, run.frames
        try:
            if self.target == "POINT_CACHE":
                bake.write_point_caches(run)
            else:
                bake.write_shape_keys(run)
        except (OSError, RuntimeError) as error:
            self.report({"ERROR"}, f"Bake not written ({error}); the previous bake is intact.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Baked {len(frames)} frames of {head.name} ({run.skin} skin)")
        return {"FINISHED"}

    def _start(self, context) -> bool:
        frames = self._frames(context.scene)
        if not len(frames):
            self.report({"ERROR"}, "The frame range is empty")
            return False
        if self.target == "POINT_CACHE" and not bpy.data.filepath:
            self.report({"ERROR"}, "Save the .blend first: the bake is stored beside it.")
            return False
        self._run = bake.BakeRun(context.scene, context.active_object, frames)
        context.window_manager.progress_begin(0, len(frames))
        return True

    def _stop(self, context) -> None:
        self._run.close()
        context.window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def _step(self, context) -> str | None:
        """One frame; None when it went well, else the error (the run is stopped)."""
        run = self._run
        try:
            frame = run.step()
        except Exception as error:
            self._stop(context)
            return f"Bake failed at frame {run.frames[run.index]} ({error}); nothing was written."
        context.window_manager.progress_update(run.index)
        if context.workspace is not None:
            context.workspace.status_text_set(
                f"PhysFace: baking frame {frame} ({run.index}/{len(run.frames)}) — Esc cancels"
            )
        return None

    def execute(self, context):
        if not self._start(context):
            return {"CANCELLED"}
        while not self._run.done:
            error = self._step(context)
            if error is not None:
                self.report({"ERROR"}, error)
                return {"CANCELLED"}
        self._stop(context)
        return self._finish(self._run)

    def invoke(self, context, event):
        if not self._start(context):
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.001, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            context.window_manager.event_timer_remove(self._timer)
            self._stop(context)
            self.report({"WARNING"}, "Bake cancelled; the previous bake is intact.")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        error = self._step(context)
        if error is not None:
            context.window_manager.event_timer_remove(self._timer)
            self.report({"ERROR"}, error)
            return {"CANCELLED"}
        if not self._run.done:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        self._stop(context)
        return self._finish(self._run)


class PHYSFACE_OT_clear_bake(bpy.types.Operator):
    """Remove the bake's modifiers and go back to live simulation (files stay on disk)"""

    bl_idname = "physface.clear_bake"
    bl_label = "Clear Bake"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_head(context.active_object)

    def execute(self, context):
        bake.clear_bake(context.active_object)
        return {"FINISHED"}


classes = (PHYSFACE_OT_bake, PHYSFACE_OT_clear_bake)
register, unregister = bpy.utils.register_classes_factory(classes)
