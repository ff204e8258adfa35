"""Bake a head's playback over a frame range into a point cache or per-frame shape keys.

Every frame is played first (the live path's own player, from rest at the first frame)
and held in memory; only a finished bake is written, each file to a temporary name and
then renamed over the old one, so a cancelled or failed bake leaves the previous bake
byte-identical. PC2 files live in ``//physface_bake/<blend name>/`` beside the .blend
(named after the .blend so that two files in one folder never share a bake) and are read
back by a Mesh Cache modifier whose path is relative to the .blend, so a bake moved with
its .blend plays without the rig.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import live
from .heads import SHAPE_KEY, head_objects
from .preferences import data_folder_setting

MODIFIER = "PhysFace Bake"
BAKE_FOLDER = "physface_bake"


class BakeCancelled(Exception):
    """The artist cancelled the bake (Esc); nothing was written."""


class BakeRun:
    """A bake in progress: ``step()`` plays one frame; the modal operator and
    ``simulate_range`` both drive it, so the bake has one per-frame body.

    While open the head is suspended (the frame handler leaves it alone) and its player
    starts from rest at the first frame; ``close()`` restores the scene's frame. ``skin``
    and ``model`` record the skin stage that made the frames (the head's runtime's)."""

    def __init__(self, scene, head, frames: range):
        if not len(frames):
            raise ValueError("The frame range is empty")
        self.scene, self.head, self.frames = scene, head, frames
        self.index = 0
        self.skin, self.model = "", ""
        self.baked = {
            obj.name: np.empty((len(frames), len(obj.data.vertices), 3), np.float32)
            for obj in head_objects(head)
        }
        self._original_frame = scene.frame_current
        self._suspension = live.suspended(head)
        self._suspension.__enter__()
        live.restart_head(head)

    @property
    def done(self) -> bool:
        return self.index >= len(self.frames)

    def step(self) -> int:
        """Play the next frame and keep its positions; returns that frame."""
        frame = self.frames[self.index]
        self.scene.frame_set(frame)
        played = live.play_frame(self.head, frame, data_folder_setting(bpy.context))
        self.skin, _, self.model = live.skin_of(self.head)
        for name, positions in live.positions_by_object(self.head, played.positions).items():
            self.baked[name][self.index] = positions
        self.index += 1
        return frame

    def close(self) -> None:
        """Leave the head to the handler again and go back to the frame shown before."""
        if self._suspension is not None:
            self._suspension.__exit__(None, None, None)
            self._suspension = None
            live.restart_head(self.head)
            self.scene.frame_set(self._original_frame)


def simulate_range(
    scene,
    head,
    frames: range,
    should_cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BakeRun:
    """Play frames (from rest at the first) → the finished run (``run.baked``: {object
    name: (F, V, 3) float32 cm}), for ``write_point_caches`` or ``write_shape_keys``."""
    run = BakeRun(scene, head, frames)
    try:
        while not run.done:
            if should_cancel is not None and should_cancel():
                frame = frames[run.index]
                raise BakeCancelled(f"bake of {head.name} cancelled at frame {frame}")
            run.step()
            if progress is not None:
                progress(run.index, len(frames))
    finally:
        run.close()
    return run


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def bake_file(blend_path: str | os.PathLike, obj) -> Path:
    """Where an object's PC2 goes: ``<folder>/physface_bake/<blend stem>/<object>.pc2``."""
    blend_path = Path(blend_path)
    return blend_path.parent / BAKE_FOLDER / _safe(blend_path.stem) / f"{_safe(obj.name)}.pc2"


def saved_blend_path() -> Path:
    """The open .blend's path; a bake of an unsaved file is refused (it has no home)."""
    if not bpy.data.filepath:
        raise RuntimeError("Save the .blend first: the bake is stored beside it.")
    return Path(bpy.data.filepath)


def _record(run: BakeRun) -> None:
    props = run.head.physface
    props.bake_skin, props.bake_model = run.skin, run.model
    props.live = False


def write_point_caches(run: BakeRun) -> None:
    """Write one PC2 per object of a finished bake atomically and point a Mesh Cache
    modifier at it; the head records the skin stage and model that made it."""
    from ..sim.pc2 import write_pc2

    head, baked, start = run.head, run.baked, run.frames.start
    blend = saved_blend_path()
    targets = head_objects(head)
    staged: list[tuple[Path, Path]] = []
    try:  # every file is written before any is replaced: all of the bake or none of it
        for obj in targets:
            path = bake_file(blend, obj)
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".{path.name}.staged")
            write_pc2(staging, baked[obj.name], start_frame=float(start))
            staged.append((staging, path))
        for staging, path in staged:
            os.replace(staging, path)
    finally:
        for staging, _ in staged:
            staging.unlink(missing_ok=True)
    for obj in targets:
        modifier = obj.modifiers.get(MODIFIER) or obj.modifiers.new(MODIFIER, "MESH_CACHE")
        modifier.cache_format = "PC2"
        modifier.filepath = bpy.path.relpath(str(bake_file(blend, obj)))
        modifier.frame_start = float(start)
        modifier.time_mode = "FRAME"
        modifier.play_mode = "SCENE"
        modifier.show_viewport = modifier.show_render = True
    head.physface.bake_path = bpy.path.relpath(str(bake_file(blend, head)))
    _record(run)


def write_shape_keys(run: BakeRun) -> None:
    """One shape key per frame ("PhysFace 0001" …), keyframed to show on its frame only;
    the head records the skin stage and model that made them."""
    head, baked, start = run.head, run.baked, run.frames.start
    for obj in head_objects(head):
        keys = obj.data.shape_keys
        for block in baked_shape_keys(obj):
            obj.shape_key_remove(block)
        for i, positions in enumerate(baked[obj.name]):
            frame = start + i
            block = obj.shape_key_add(name=f"{SHAPE_KEY} {frame:04d}", from_mix=False)
            block.data.foreach_set("co", np.ascontiguousarray(positions, np.float32).ravel())
            for value, at in ((0.0, frame - 1), (1.0, frame), (0.0, frame + 1)):
                block.value = value
                block.keyframe_insert("value", frame=at)
        keys.key_blocks[SHAPE_KEY].value = 0.0
    _record(run)


def baked_shape_keys(obj) -> list:
    """The per-frame bake shape keys of a head object ("PhysFace 0001" …)."""
    keys = obj.data.shape_keys
    if keys is None:
        return []
    return [b for b in keys.key_blocks if b.name.startswith(f"{SHAPE_KEY} ")]


def clear_bake(head) -> None:
    """Remove the bake's modifiers and shape keys (files stay on disk); back to live."""
    for obj in head_objects(head):
        modifier = obj.modifiers.get(MODIFIER)
        if modifier is not None:
            obj.modifiers.remove(modifier)
        for block in baked_shape_keys(obj):
            obj.shape_key_remove(block)
        obj.data.shape_keys.key_blocks[SHAPE_KEY].value = 1.0
    head.physface.bake_path = ""
    head.physface.bake_skin = head.physface.bake_model = ""
    head.physface.live = True


@dataclass
class BakeProblem:
    """Why a baked head cannot show some frames: the object, what is wrong, the fix."""

    head: str
    message: str

    def __str__(self) -> str:
        return f"{self.head}: {self.message}"


def _pc2_frames(path: Path, vertex_count: int) -> range:
    """The frames a PC2 file holds for a mesh of ``vertex_count`` vertices (its header,
    checked against the file size); raises ValueError for a file Blender cannot play."""
    with open(path, "rb") as handle:
        header = handle.read(32)
        size = os.fstat(handle.fileno()).st_size
    if len(header) < 32 or header[:12] != b"POINTCACHE2\0":
        raise ValueError("not a PC2 point cache")
    _, points, start, rate, samples = struct.unpack_from("<iiffi", header, 12)
    if points != vertex_count:
        raise ValueError(f"{points} points for a mesh of {vertex_count} vertices")
    if size != 32 + samples * points * 12:
        raise ValueError(f"truncated: {size} bytes, {32 + samples * points * 12} expected")
    first = int(round(start))
    return range(first, first + int(round((samples - 1) * rate)) + 1) if samples > 0 else range(0)


def _describe_frames(frames) -> str:
    frames = sorted(frames)
    if len(frames) == 1:
        return f"frame {frames[0]}"
    if frames == list(range(frames[0], frames[-1] + 1)):
        return f"frames {frames[0]}–{frames[-1]}"
    shown = ", ".join(str(f) for f in frames[:6])
    return f"frames {shown}{', …' if len(frames) > 6 else ''}"


def bake_problem(head, frames=None) -> BakeProblem | None:
    """What keeps a baked (not live) head from showing ``frames`` (None: any frame):
    a missing or unreadable point cache, or frames outside the bake. None when fine."""
    if head.physface.live:
        return None
    fix = "bake it again (PhysFace ▸ Bake) or Clear Bake to go back to live"
    wanted = None if frames is None else set(frames)
    cached = False
    for obj in head_objects(head):
        modifier = obj.modifiers.get(MODIFIER)
        if modifier is not None and modifier.show_render:
            cached = True
            path = Path(bpy.path.abspath(modifier.filepath, library=obj.library))
            if not path.is_file():
                return BakeProblem(
                    head.name, f"its bake file {modifier.filepath} ({path}) is missing; {fix}."
                )
            try:
                held = _pc2_frames(path, len(obj.data.vertices))
            except (OSError, ValueError, struct.error) as error:
                return BakeProblem(
                    head.name, f"its bake file {path} is unreadable ({error}); {fix}."
                )
            if wanted is not None and not wanted <= set(held):
                missing = _describe_frames(wanted - set(held))
                return BakeProblem(
                    head.name,
                    f"its bake ({path}) holds frames {held.start}–{held.stop - 1}, not {missing}; "
                    f"{fix} over these frames.",
                )
    if cached:
        return None
    keyed = {
        int(b.name.split()[-1]) for b in baked_shape_keys(head) if b.name.split()[-1].isdigit()
    }
    if not keyed:
        return BakeProblem(head.name, f"it is not live and has no bake; {fix}.")
    if wanted is not None and not wanted <= keyed:
        missing = _describe_frames(wanted - keyed)
        return BakeProblem(
            head.name, f"its shape-key bake has no {missing}; {fix} over these frames."
        )
    return None
