"""Batch work without a window: bake every head of a scene and render a frame range.

Shared by ``python -m physface render`` (the bpy module) and ``blender -b file.blend -P
cli/render.py -- …``. Every failure is a BatchError with a message that names the problem.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import bpy

from . import bake
from .heads import scene_heads


class BatchError(Exception):
    """A batch job cannot run (missing file, bad frame range, unwritable output, …)."""


def parse_frames(text: str) -> list[int]:
    """Frames from "1-48", "10" or "1,5,10-12" (inclusive ranges), in order."""
    frames: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            start, end = int(first), int(last) if last else int(first)
            if end < start:
                raise BatchError(f"frame range {part!r} runs backwards; write it as {end}-{start}")
            frames.extend(range(start, end + 1))
    except ValueError as error:
        raise BatchError(f"bad frame range {text!r}: use e.g. 1-48 or 1,5,10-12") from error
    if not frames:
        raise BatchError(f"frame range {text!r} is empty")
    return frames


def open_blend(path: str | os.PathLike) -> None:
    path = Path(path)
    if not path.is_file():
        raise BatchError(f"{path} does not exist; give the path of a saved .blend file")
    try:
        bpy.ops.wm.open_mainfile(filepath=str(path.resolve()))
    except RuntimeError as error:
        raise BatchError(f"{path} could not be opened as a .blend file ({error})") from error


def check_output_folder(out: str | os.PathLike) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".physface-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise BatchError(f"cannot write to the output folder {out} ({error})") from error
    return out


def bake_heads(scene, frames: list[int], log=print, rebake: bool = False) -> None:
    """Bake every live head over the frames' span into point caches beside the .blend.

    A head already baked is checked instead: its bake must exist and hold every frame,
    else BatchError names the head, the missing file or frames and the fix (``rebake``
    bakes it again here). Never renders a face at rest in place of a missing bake."""
    span = range(min(frames), max(frames) + 1)
    heads = scene_heads(scene)
    to_bake = [head for head in heads if head.physface.live or rebake]
    for head in heads:  # every check before any bake: a refused render writes nothing
        if head not in to_bake:
            problem = bake.bake_problem(head, frames)
            if problem is not None:
                raise BatchError(f"{problem} (or render with --rebake to bake it here)")
            log(f"physface: {head.name} already baked ({head.physface.bake_path})")
    for head in to_bake:
        if not head.physface.live:
            bake.clear_bake(head)
        clock = time.perf_counter()

        def progress(done, total, name=head.name):
            if done == total or done % 10 == 0:
                log(f"physface: baking {name}: {done}/{total} frames")

        run = bake.simulate_range(scene, head, span, progress=progress)
        bake.write_point_caches(run)
        log(f"physface: baked {head.name} with the {run.skin} skin "
            f"in {time.perf_counter() - clock:.1f} s")  # fmt: skip


def configure_render(scene, engine: str, samples: int, percentage: int) -> str:
    """Render settings for PNG output; Cycles on the CPU by default, EEVEE when asked."""
    if engine == "EEVEE":
        for identifier in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"):
            try:
                scene.render.engine = identifier
                break
            except TypeError:
                continue
        else:
            raise BatchError("EEVEE is not available in this Blender; use --engine CYCLES")
        scene.eevee.taa_render_samples = samples
    else:
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = True
    scene.render.resolution_percentage = percentage
    scene.render.image_settings.file_format = "PNG"
    return scene.render.engine


def render_frames(
    blend: str | None, frames_text: str, out: str, engine: str = "CYCLES", samples: int = 32,
    percentage: int = 100, log=print, rebake: bool = False,
) -> list[Path]:  # fmt: skip
    """Open (unless None: the current file), bake the heads, render each frame to PNG."""
    frames = parse_frames(frames_text)
    out_dir = check_output_folder(out)
    if blend is not None:
        open_blend(blend)
    scene = bpy.context.scene
    if not scene_heads(scene):
        raise BatchError("the scene has no PhysFace head; add one with Add ▸ Mesh ▸ PhysFace Head")
    if scene.camera is None:
        raise BatchError("the scene has no active camera to render from")
    if not bpy.data.filepath and any(h.physface.live or rebake for h in scene_heads(scene)):
        raise BatchError("save the .blend first: the heads' bakes are stored beside it")
    bake_heads(scene, frames, log, rebake)
    used = configure_render(scene, engine, samples, percentage)
    written = []
    for i, frame in enumerate(frames):
        clock = time.perf_counter()
        scene.frame_set(frame)
        path = out_dir / f"frame_{frame:04d}.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        if not path.is_file():
            raise BatchError(f"Blender did not write {path}")
        written.append(path)
        log(f"physface: rendered frame {frame} ({i + 1}/{len(frames)}, {used}) "
            f"in {time.perf_counter() - clock:.1f} s -> {path}")  # fmt: skip
    return written
