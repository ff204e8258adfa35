"""The artist's workflow in headless Blender on the tiny rig: add, sliders, bake, batch."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from blender_helpers import evaluated_positions, shape_key_positions

from physface.sim.anatomy import JawPose
from physface.sim.controls import Controls
from physface.sim.face_model import load_face_model
from physface.sim.pc2 import read_pc2
from physface.sim.playback import HeadPlayer
from physface.sim.rig import load_rig
from physface.sim.tolerances import PLAYBACK_TOLERANCE

PRESET = "tiny"


@pytest.fixture
def head(blender, addon_module):
    assert blender.ops.physface.add_head(rig_preset=PRESET) == {"FINISHED"}
    obj = blender.context.active_object
    assert obj.physface.last_error == ""
    return obj


class Library:
    """The playback pipeline the Blender path uses, called directly with a head's settings."""

    def __init__(self, head):
        props = head.physface
        rig = load_rig(PRESET, with_hr=False)
        self.player = HeadPlayer(
            rig, fps=24.0, dynamics=props.dynamics, tolerance=props.tolerance,
            max_iterations=props.max_iterations,
        )  # fmt: skip
        self.rest = rig.ict_rest_positions.copy()
        self.frame = 0

    def step(self, controls: Controls) -> np.ndarray:
        """The next frame (warm-started from the last one, as the timeline advances)."""
        self.frame += 1
        return self.player.play(self.frame, controls).positions.copy()


def ict_indices(obj, addon_module):
    return addon_module.blender.heads.ict_indices(obj)


def test_add_head_creates_objects_and_shape_key(head, addon_module):
    model = load_face_model()
    children = {child.physface.role: child for child in head.children}
    assert set(children) == {"teeth", "eyes"}
    total = sum(len(o.data.vertices) for o in (head, *children.values()))
    assert total > 20000
    for obj in (head, *children.values()):
        assert [b.name for b in obj.data.shape_keys.key_blocks] == ["Basis", "PhysFace"]
        indices = ict_indices(obj, addon_module)
        np.testing.assert_allclose(shape_key_positions(obj), model.neutral[indices], atol=1e-4)
    assert head.data.uv_layers.active is not None
    assert head.active_material.name == "PhysFace Skin"


def test_slider_gives_exactly_the_library_result(head, addon_module):
    library = Library(head)
    library.step(Controls())  # the head was simulated at rest when added
    head.physface.activations.zygomaticus_major_L = 1.0
    head.physface.jaw_opening = 10.0
    expected_first = library.step(Controls(activations={"zygomaticus_major_L": 1.0}))
    expected = library.step(
        Controls(activations={"zygomaticus_major_L": 1.0}, jaw=JawPose(opening_deg=10.0))
    )
    for obj in (head, *head.children):
        indices = ict_indices(obj, addon_module)
        np.testing.assert_allclose(shape_key_positions(obj), expected[indices], atol=1e-5)
    moved = np.linalg.norm(expected_first - library.rest, axis=1).max()
    assert moved > 0.01  # the slider moved the face (cm)


def _keyframe_smile(bpy, head):
    head.physface.activations.zygomaticus_major_L = 0.0
    head.keyframe_insert("physface.activations.zygomaticus_major_L", frame=1)
    head.physface.activations.zygomaticus_major_L = 1.0
    head.keyframe_insert("physface.activations.zygomaticus_major_L", frame=4)
    head.physface.jaw_opening = 12.0
    head.keyframe_insert("physface.jaw_opening", frame=4)
    head.physface.jaw_opening = 0.0
    head.keyframe_insert("physface.jaw_opening", frame=1)
    bpy.context.scene.frame_set(1)


def test_the_next_frames_controls_are_guessed_from_the_action(head, blender, addon_module):
    """The lookahead's guess at frame f for f + 1 is what the head's properties hold once
    the timeline is at f + 1 (value for value), and none is made where drivers animate."""
    from physface.sim.controls import same_controls

    live = addon_module.blender.live
    _keyframe_smile(blender, head)
    for frame in (1, 2, 3):
        blender.context.scene.frame_set(frame)
        guess = live.controls_at(head, frame + 1)
        blender.context.scene.frame_set(frame + 1)
        assert same_controls(guess, live.controls_of(head)), frame
    assert not same_controls(live.controls_at(head, 1), live.controls_of(head))
    driver = head.driver_add("physface.activations.risorius_L").driver
    driver.expression = "0.3"
    assert live.controls_at(head, 2) is None


def test_bake_matches_direct_computation_and_plays_back(head, blender, addon_module, tmp_path):
    bpy = blender
    _keyframe_smile(bpy, head)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert bpy.ops.physface.bake(frame_start=1, frame_end=4) == {"FINISHED"}
    frames, start, _ = read_pc2(bpy.path.abspath(head.physface.bake_path))
    assert frames.shape[0] == 4 and start == 1.0

    library = Library(head)
    indices = ict_indices(head, addon_module)
    for i, frame in enumerate(range(1, 5)):
        bpy.context.scene.frame_set(frame)
        controls = addon_module.blender.live.controls_of(head)
        expected = library.step(controls)[indices]
        np.testing.assert_allclose(frames[i], expected, atol=1e-5)
        np.testing.assert_allclose(evaluated_positions(bpy, head), frames[i], atol=1e-5)
    assert np.abs(frames[3] - frames[0]).max() > 0.05

    # Saved and reopened, the bake plays back through the Mesh Cache modifier, no rig.
    name = head.name
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    addon_module.blender.live._runtimes.clear()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    reopened = bpy.data.objects[name]
    bpy.context.scene.frame_set(3)
    np.testing.assert_allclose(evaluated_positions(bpy, reopened), frames[2], atol=1e-5)
    assert not addon_module.blender.live._runtimes  # nothing was simulated


def test_cancelled_bake_keeps_the_previous_bake(head, blender, addon_module, tmp_path):
    bpy = blender
    bake = addon_module.blender.bake
    _keyframe_smile(bpy, head)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    assert bpy.ops.physface.bake(frame_start=1, frame_end=3) == {"FINISHED"}
    path = Path(bpy.path.abspath(head.physface.bake_path))
    before = path.read_bytes()
    calls = iter(range(100))
    with pytest.raises(bake.BakeCancelled):
        bake.simulate_range(bpy.context.scene, head, range(1, 5), lambda: next(calls) >= 2)
    assert path.read_bytes() == before
    # A write that fails (the head's file is now a folder) leaves every old file alone.
    teeth = next(c for c in head.children if c.physface.role == "teeth")
    teeth_path = bake.bake_file(tmp_path / "scene.blend", teeth)
    teeth_before = teeth_path.read_bytes()
    path.unlink()
    path.mkdir()
    with pytest.raises(RuntimeError, match="previous bake is intact"):
        bpy.ops.physface.bake(frame_start=1, frame_end=4)
    assert teeth_path.read_bytes() == teeth_before
    assert not list((tmp_path / "physface_bake").rglob(".*"))  # no staging files left


def test_a_failing_head_does_not_stop_the_others(blender, addon_module):
    bpy = blender
    assert bpy.ops.physface.add_head(rig_preset=PRESET) == {"FINISHED"}
    good = bpy.context.active_object
    assert bpy.ops.physface.add_head(rig_preset=PRESET) == {"FINISHED"}
    bad = bpy.context.active_object
    assert good.name != bad.name
    bad.data.attributes.remove(bad.data.attributes["physface_ict"])
    addon_module.blender.live.forget_head(bad)
    good.physface.activations.zygomaticus_major_L = 1.0
    before = shape_key_positions(good).copy()
    good.physface.jaw_opening = 15.0
    bpy.context.scene.frame_set(2)
    assert "physface_ict" in bad.physface.last_error
    assert good.physface.last_error == ""
    assert np.abs(shape_key_positions(good) - before).max() > 0.1


def test_heads_are_independent(blender):
    bpy = blender
    bpy.ops.physface.add_head(rig_preset=PRESET)
    first = bpy.context.active_object
    bpy.ops.physface.add_head(rig_preset=PRESET)
    second = bpy.context.active_object
    rest = shape_key_positions(second).copy()
    first.physface.jaw_opening = 20.0
    assert np.abs(shape_key_positions(second) - rest).max() < 1e-6
    assert np.abs(shape_key_positions(first) - rest).max() > 0.5


@pytest.fixture
def demo_blend(blender, tmp_path, addon_module):
    import importlib

    demo = importlib.import_module(f"{addon_module.__name__}.blender.demo_scene")
    head = demo.new_demo_scene(PRESET)
    head.physface.jaw_opening = 12.0
    path = tmp_path / "render_me.blend"
    blender.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _run_render(*args):
    command = [sys.executable, "-m", "physface", "render", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_batch_render_writes_images_of_the_face(demo_blend, tmp_path, blender):
    out = tmp_path / "frames"
    result = _run_render(demo_blend, "--frames", "1-2", "--out", out, "--samples", "4",
                         "--resolution-percentage", "20")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for frame in (1, 2):
        image = blender.data.images.load(str(out / f"frame_{frame:04d}.png"))
        pixels = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        rgb = pixels.reshape(-1, 4)[:, :3]
        background = np.median(rgb[: image.size[0]], axis=0)  # the bottom row is background
        face = np.abs(rgb - background).max(axis=1) > 0.1
        assert 0.05 < face.mean() < 0.8, face.mean()


def test_batch_render_fails_clearly(tmp_path, demo_blend):
    missing = _run_render(tmp_path / "nope.blend", "--frames", "1-2", "--out", tmp_path)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    backwards = _run_render(demo_blend, "--frames", "5-1", "--out", tmp_path)
    assert backwards.returncode != 0 and "backwards" in backwards.stderr


def _played_at_rest_start(bpy, head, frame: int = 5) -> np.ndarray:
    """The head's shape-key positions at ``frame``, played from rest (a jump to it)."""
    bpy.context.scene.frame_set(frame + 5)
    bpy.context.scene.frame_set(frame)
    assert head.physface.last_error == ""
    return shape_key_positions(head).copy()


def _sag(bpy, head, addon_module) -> np.ndarray:
    """Mean displacement (3,) cm of the head's simulated skin, gravity on minus off."""
    with addon_module.blender.live.batch_edit(head, update=False):
        head.physface.tolerance = 1e-5
        head.physface.max_iterations = 400
        head.physface.gravity = False
    off = _played_at_rest_start(bpy, head)
    with addon_module.blender.live.batch_edit(head, update=False):
        head.physface.gravity = True
    on = _played_at_rest_start(bpy, head)
    moved = np.linalg.norm(on - off, axis=1) > 1e-4
    assert moved.sum() > 100, moved.sum()
    return (on - off)[moved].mean(axis=0)


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [
        ((np.pi / 2, 0.0, 0.0), (0.0, -1.0, 0.0)),  # upright (as added): down is ICT -Y
        ((0.0, 0.0, 0.0), (0.0, 0.0, -1.0)),  # on its back, face up: toward the back, -Z
    ],
    ids=["upright", "on_its_back"],
)
def test_gravity_pulls_the_flesh_down_in_the_heads_orientation(
    head, blender, addon_module, rotation, expected
):
    head.rotation_euler = rotation
    sag = _sag(blender, head, addon_module)
    direction = sag / np.linalg.norm(sag)
    assert direction @ np.array(expected) > 0.8, direction


def test_control_warnings_reach_the_panel(head, blender):
    head.physface.activations.zygomaticus_major_L = 1.5  # typed past the slider's 0-1
    assert "zygomaticus_major_L" in head.physface.last_warning
    assert "clamped" in head.physface.last_warning
    clamped = _played_at_rest_start(blender, head)
    head.physface.activations.zygomaticus_major_L = 1.0
    assert head.physface.last_warning == ""
    np.testing.assert_allclose(_played_at_rest_start(blender, head), clamped, atol=1e-6)


def test_live_tolerance_defaults_to_the_playback_tolerance(head, addon_module):
    assert head.physface.tolerance == pytest.approx(PLAYBACK_TOLERANCE)
    player = addon_module.blender.live._runtimes[head.session_uid].player
    assert player.simulator.tolerance == pytest.approx(PLAYBACK_TOLERANCE)


class _Recorder:
    """Stands in for a panel's layout: keeps the text of every label."""

    alert = False

    def __init__(self):
        self.labels: list[str] = []

    def _same(self, *_, **__):
        return self

    row = column = box = grid_flow = _same

    def label(self, text="", icon=None):
        self.labels.append(f"{icon}: {text}")

    def prop(self, *_, **__):
        pass

    def operator(self, *_, **__):
        return SimpleNamespace()


def _panel_labels(bpy, addon_module, head) -> list[str]:
    bpy.context.view_layer.objects.active = head
    layout = _Recorder()
    addon_module.panels.sidebar.VIEW3D_PT_physface.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout.labels


def _bake_scene(bpy, head, blend: Path, jaw_at_3: float, frames=(1, 3)) -> np.ndarray:
    """Keyframe the jaw from 0 (frame 1) to ``jaw_at_3``, save as ``blend``, bake."""
    bpy.context.scene.frame_set(1)
    for frame, value in ((1, 0.0), (3, jaw_at_3)):
        head.physface.jaw_opening = value
        head.keyframe_insert("physface.jaw_opening", frame=frame)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert bpy.ops.physface.bake(frame_start=frames[0], frame_end=frames[1]) == {"FINISHED"}
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    return read_pc2(bpy.path.abspath(head.physface.bake_path))[0]


def _add_camera(bpy) -> None:
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera


def _reopened_positions(bpy, addon_module, blend: Path, frame: int) -> np.ndarray:
    addon_module.blender.live._runtimes.clear()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    bpy.context.scene.frame_set(frame)
    head = bpy.data.objects["PhysFace Head"]
    positions = evaluated_positions(bpy, head)
    assert not addon_module.blender.live._runtimes  # played from the bake, not simulated
    return positions


def test_bakes_of_two_files_in_one_folder_stay_separate_and_move_with_them(
    head, blender, addon_module, tmp_path
):
    bpy = blender
    shots = tmp_path / "shots"
    shots.mkdir()
    frames_a = _bake_scene(bpy, head, shots / "shot_a.blend", jaw_at_3=5.0)
    bake_a = sorted((shots / "physface_bake").rglob("*.pc2"))
    before = {path: path.read_bytes() for path in bake_a}
    frames_b = _bake_scene(bpy, head, shots / "shot_b.blend", jaw_at_3=20.0)
    assert {path: path.read_bytes() for path in bake_a} == before  # shot_b wrote elsewhere
    assert head.physface.bake_path == "//physface_bake/shot_b/PhysFace_Head.pc2"
    umask = os.umask(0)
    os.umask(umask)
    for path in bake_a:  # as readable as the .blend beside them (not 0600)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert np.abs(frames_b[2] - frames_a[2]).max() > 0.3  # two different performances

    # A third file in the folder rendered from the command line bakes beside, not over.
    bakes = {path: path.read_bytes() for path in (shots / "physface_bake").rglob("*.pc2")}
    assert bpy.ops.physface.clear_bake() == {"FINISHED"}
    _add_camera(bpy)
    bpy.ops.wm.save_as_mainfile(filepath=str(shots / "shot_c.blend"))
    result = _run_render(shots / "shot_c.blend", "--frames", "2", "--out", tmp_path / "frames",
                         "--samples", "1", "--resolution-percentage", "5")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert {path: path.read_bytes() for path in bakes} == bakes
    assert (shots / "physface_bake" / "shot_c" / "PhysFace_Head.pc2").is_file()

    moved = tmp_path / "elsewhere" / "shots"
    moved.parent.mkdir()
    shots.rename(moved)  # the folder moves with its .blend files and bakes
    for name, frames in (("shot_a", frames_a), ("shot_b", frames_b)):
        positions = _reopened_positions(bpy, addon_module, moved / f"{name}.blend", 3)
        np.testing.assert_allclose(positions, frames[2], atol=1e-5)


def test_an_unsaved_file_is_not_baked_to_a_point_cache(head, blender):
    with pytest.raises(RuntimeError, match="Save the .blend first"):
        blender.ops.physface.bake(frame_start=1, frame_end=2)
    assert head.physface.live and head.physface.bake_path == ""


def test_a_missing_bake_is_an_error_in_the_panel(head, blender, addon_module, tmp_path):
    bpy = blender
    assert not any("Bake" in label for label in _panel_labels(bpy, addon_module, head))
    _bake_scene(bpy, head, tmp_path / "scene.blend", jaw_at_3=10.0)
    assert not any("ERROR" in label for label in _panel_labels(bpy, addon_module, head))
    bpy.context.scene.frame_set(8)  # past the bake's frames 1-3: it would show frame 3
    errors = [label for label in _panel_labels(bpy, addon_module, head) if "ERROR" in label]
    assert len(errors) == 1 and "frame 8" in errors[0], errors
    bpy.context.scene.frame_set(2)
    shutil.rmtree(tmp_path / "physface_bake")
    errors = [label for label in _panel_labels(bpy, addon_module, head) if "ERROR" in label]
    assert len(errors) == 1 and "PhysFace_Head.pc2" in errors[0] and "missing" in errors[0]


def test_render_refuses_a_missing_or_short_bake(head, blender, tmp_path):
    bpy = blender
    blend = tmp_path / "baked.blend"
    _bake_scene(bpy, head, blend, jaw_at_3=10.0)
    _add_camera(bpy)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    out = tmp_path / "frames"

    short = _run_render(blend, "--frames", "8", "--out", out)
    assert short.returncode != 0
    (line,) = short.stderr.strip().splitlines()
    assert "PhysFace Head" in line and "frame 8" in line and "holds frames 1–3" in line

    pc2 = tmp_path / "physface_bake" / "baked" / "PhysFace_Head.pc2"
    pc2.unlink()
    missing = _run_render(blend, "--frames", "2", "--out", out)
    assert missing.returncode != 0
    (line,) = missing.stderr.strip().splitlines()
    assert "PhysFace Head" in line and "PhysFace_Head.pc2" in line and "missing" in line
    assert not list(out.glob("*.png"))  # nothing rendered in place of the bake

    rebaked = _run_render(blend, "--frames", "8", "--out", out, "--rebake", "--samples", "1",
                          "--resolution-percentage", "5")  # fmt: skip
    assert rebaked.returncode == 0, rebaked.stderr[-3000:]
    frames, start, _ = read_pc2(pc2)
    assert start == 8.0 and frames.shape[0] == 1
    assert (out / "frame_0008.png").is_file()
