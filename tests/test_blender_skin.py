"""The fine face in Blender (tiny rig, a small model exported in the test): the network skin
stage per head, the fine/coarse switch, the fallback for a missing or foreign model, and a
bake made with the network that plays back without the rig or the model."""

import importlib
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from blender_helpers import evaluated_positions, load_tool, shape_key_positions  # noqa: E402
from tiny_model import export_foreign_model, export_tiny_model  # noqa: E402

from physface.nets.skin_stage import NetworkSkinStage  # noqa: E402
from physface.sim.anatomy import JawPose  # noqa: E402
from physface.sim.controls import Controls  # noqa: E402
from physface.sim.pc2 import read_pc2  # noqa: E402
from physface.sim.playback import HeadPlayer  # noqa: E402
from physface.sim.rig import load_rig  # noqa: E402

PRESET = "tiny"
SMILE = {"zygomaticus_major_L": 1.0}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-test"
    export_tiny_model(folder)
    return folder


@pytest.fixture(scope="module")
def foreign_folder(model_folder, tmp_path_factory):
    """The same model made for another LR lattice (rest nodes 0.1 mm away, another key)."""
    from physface.nets.runtime import load_torch_model

    with np.load(model_folder / "model.npz") as stored:
        rows = stored["skin_vertices"]
    folder = tmp_path_factory.mktemp("models") / "foreign"
    export_foreign_model(load_torch_model(model_folder).model, folder, rows, shift_cm=0.01)
    return folder


class Library:
    """The playback pipeline with a given skin stage, called directly (no Blender)."""

    def __init__(self, head, model=None):
        props = head.physface
        self.rig = load_rig(PRESET, with_hr=False)
        stage = NetworkSkinStage(self.rig, model, threads=1) if model is not None else None
        self.player = HeadPlayer(
            self.rig, stage, fps=24.0, dynamics=props.dynamics, tolerance=props.tolerance,
            max_iterations=props.max_iterations,
        )  # fmt: skip
        self.frame = 0

    def step(self, controls: Controls) -> np.ndarray:
        """The next frame (warm-started from the last one, as the timeline advances)."""
        self.frame += 1
        self.last = self.player.play(self.frame, controls)
        return self.last.positions.copy()


def add_head(bpy, addon_module, model=None, name=None):
    assert bpy.ops.physface.add_head(rig_preset=PRESET) == {"FINISHED"}
    head = bpy.context.active_object
    if name:
        head.name = name
    if model is not None:
        with addon_module.blender.live.batch_edit(head):
            head.physface.model_path = str(model)
            head.physface.skin_stage = "FINE"
    return head


def ict(addon_module, obj):
    return addon_module.blender.heads.ict_indices(obj)


def sidebar_text(bpy, addon_module) -> str:
    """The PhysFace sidebar as text (tools/dump_panels.py's recording layout)."""
    dump = load_tool("dump_panels")
    lines: list[str] = []
    for cls in addon_module.panels.sidebar.classes:
        if not hasattr(cls, "poll") or cls.poll(bpy.context):
            cls.draw(SimpleNamespace(layout=dump.RecordingLayout(lines)), bpy.context)
    return "\n".join(lines)


def test_a_tiny_head_starts_coarse_and_plays_the_models_output_when_fine(
    blender, addon_module, model_folder
):
    bpy = blender
    assert bpy.ops.physface.add_head(rig_preset=PRESET) == {"FINISHED"}
    head = bpy.context.active_object
    # no model ships for tiny: the head starts with the coarse skin, and no complaint
    assert head.physface.skin_stage == "COARSE" and head.physface.skin_note == ""
    library = Library(head, model_folder)
    library.step(Controls())  # played when added
    with addon_module.blender.live.batch_edit(head):
        head.physface.model_path = str(model_folder)
        head.physface.skin_stage = "FINE"
    library.step(Controls())
    assert head.physface.skin_in_use == "fine · tiny-test" and head.physface.skin_note == ""
    head.physface.activations.zygomaticus_major_L = 1.0
    library.step(Controls(activations=SMILE))
    head.physface.jaw_opening = 10.0
    expected = library.step(Controls(activations=SMILE, jaw=JawPose(opening_deg=10.0)))
    for obj in (head, *head.children):
        np.testing.assert_allclose(
            shape_key_positions(obj), expected[ict(addon_module, obj)], atol=2e-5, rtol=0
        )
    assert head.physface.last_error == "" and head.physface.skin_ms > 0
    assert "Skin fine · tiny-test" in sidebar_text(bpy, addon_module)


def test_switching_between_fine_and_coarse_changes_the_shape_key(
    blender, addon_module, model_folder
):
    bpy = blender
    head = add_head(bpy, addon_module, model_folder)
    simulator = addon_module.blender.live.runtime_for(head).player.simulator
    library = Library(head, model_folder)
    coarse_stage = library.player.embedded_stage
    for controls in (Controls(), Controls(), Controls(activations=SMILE)):
        fine = library.step(controls)  # added, model chosen, the slider
    head.physface.activations.zygomaticus_major_L = 1.0
    indices = ict(addon_module, head)
    np.testing.assert_allclose(shape_key_positions(head), fine[indices], atol=2e-5, rtol=0)

    head.physface.skin_stage = "COARSE"  # the frame is played again with the coarse skin
    assert head.physface.skin_in_use == "coarse"
    lids = library.player.eyelids
    shown_correction = lids.correction  # the lids of the shown frame, where the replay starts
    library.step(Controls(activations=SMILE))
    shown = library.last.result
    coarse = coarse_stage(shown.volume_positions, shown.head_transform, shown.jaw_transform)
    lids.correction = shown_correction
    coarse = lids(coarse.copy(), shown.head_transform, library.last.activations)
    np.testing.assert_allclose(shape_key_positions(head), coarse[indices], atol=2e-5, rtol=0)
    face = np.isin(indices, library.player.skin_stage.vertices)
    gap = np.linalg.norm(fine[indices] - coarse[indices], axis=1)
    assert gap[face].max() > 1e-3  # the two skins differ on the face (cm)
    assert gap[~face].max() < 1e-3  # and agree on the parts that follow the skull and jaw

    head.physface.skin_stage = "FINE"
    fine = library.step(Controls(activations=SMILE))
    np.testing.assert_allclose(shape_key_positions(head), fine[indices], atol=2e-5, rtol=0)
    assert head.physface.skin_in_use == "fine · tiny-test"
    assert addon_module.blender.live.runtime_for(head).player.simulator is simulator  # kept


def test_a_missing_or_foreign_model_falls_back_and_every_head_keeps_playing(
    blender, addon_module, model_folder, foreign_folder, tmp_path
):
    bpy = blender
    heads = {
        "missing": add_head(bpy, addon_module, tmp_path / "no-such-model", "Missing"),
        "foreign": add_head(bpy, addon_module, foreign_folder, "Foreign"),
        "fine": add_head(bpy, addon_module, model_folder, "Fine"),
    }
    rest = {name: shape_key_positions(head).copy() for name, head in heads.items()}
    for head in heads.values():
        head.physface.activations.zygomaticus_major_L = 0.0
        head.keyframe_insert("physface.activations.zygomaticus_major_L", frame=1)
        head.physface.activations.zygomaticus_major_L = 1.0
        head.keyframe_insert("physface.activations.zygomaticus_major_L", frame=3)
    scene = bpy.context.scene
    library = Library(heads["missing"])  # the fallen-back head plays the coarse skin exactly
    for controls in (Controls(), Controls(), Controls(), Controls(activations=SMILE)):
        library.step(controls)  # added, model chosen, the two keyframed edits
    for frame in (1, 2, 3):
        scene.frame_set(frame)
        expected = library.step(addon_module.blender.live.controls_of(heads["missing"]))
    for name, head in heads.items():
        props = head.physface
        assert props.last_error == "", (name, props.last_error)
        assert addon_module.blender.live.runtime_for(head).player.last_frame == 3, name
        moved = np.linalg.norm(shape_key_positions(head) - rest[name], axis=1).max()
        # the handler wrote every head (the untrained test model barely follows a smile)
        assert moved > (1e-3 if name == "fine" else 0.01), name
    assert "missing" in heads["missing"].physface.skin_note
    assert "another LR lattice" in heads["foreign"].physface.skin_note
    for name in ("missing", "foreign"):
        assert heads[name].physface.skin_in_use == "coarse (fallback)"
        bpy.context.view_layer.objects.active = heads[name]
        assert f"Fine skin off: {heads[name].physface.skin_note}" in sidebar_text(bpy, addon_module)
    assert heads["fine"].physface.skin_note == ""
    np.testing.assert_allclose(
        shape_key_positions(heads["missing"]), expected[ict(addon_module, heads["missing"])],
        atol=1e-4, rtol=0,
    )  # fmt: skip


def _keyframe_smile(bpy, head):
    for frame, value, jaw in ((1, 0.0, 0.0), (4, 1.0, 12.0)):
        head.physface.activations.zygomaticus_major_L = value
        head.keyframe_insert("physface.activations.zygomaticus_major_L", frame=frame)
        head.physface.jaw_opening = jaw
        head.keyframe_insert("physface.jaw_opening", frame=frame)
    bpy.context.scene.frame_set(1)


def test_a_network_bake_equals_a_direct_computation_and_plays_without_rig_or_model(
    blender, addon_module, model_folder, tmp_path
):
    bpy = blender
    model = tmp_path / "my-model"
    shutil.copytree(model_folder, model)
    head = add_head(bpy, addon_module, model)
    _keyframe_smile(bpy, head)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert bpy.ops.physface.bake(frame_start=1, frame_end=4) == {"FINISHED"}
    props = head.physface
    assert props.bake_skin == "fine · my-model"
    assert str(model) in props.bake_model and "key " in props.bake_model
    frames, start, _ = read_pc2(bpy.path.abspath(props.bake_path))
    assert frames.shape[0] == 4 and start == 1.0

    library = Library(head, model)
    indices = ict(addon_module, head)
    for i, frame in enumerate(range(1, 5)):
        bpy.context.scene.frame_set(frame)
        expected = library.step(addon_module.blender.live.controls_of(head))[indices]
        np.testing.assert_allclose(frames[i], expected, atol=2e-5, rtol=0)
    assert np.abs(frames[3] - frames[0]).max() > 0.01  # (the untrained model moves little)

    # the shape-key bake uses the same stage
    assert bpy.ops.physface.bake(frame_start=1, frame_end=4, target="SHAPE_KEYS") == {"FINISHED"}
    keyed = head.data.shape_keys.key_blocks["PhysFace 0003"]
    positions = np.empty(len(keyed.data) * 3, np.float32)
    keyed.data.foreach_get("co", positions)
    np.testing.assert_allclose(positions.reshape(-1, 3), frames[2], atol=2e-5, rtol=0)
    assert props.bake_skin == "fine · my-model"

    # saved, the model deleted, reopened: the bake plays back and nothing is simulated
    for block in addon_module.blender.bake.baked_shape_keys(head):
        head.shape_key_remove(block)
    bpy.ops.physface.bake(frame_start=1, frame_end=4)
    name = head.name
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    shutil.rmtree(model)
    addon_module.blender.live._runtimes.clear()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    reopened = bpy.data.objects[name]
    assert reopened.physface.bake_skin == "fine · my-model"
    for frame in (2, 4):
        bpy.context.scene.frame_set(frame)
        np.testing.assert_allclose(
            evaluated_positions(bpy, reopened), frames[frame - 1], atol=2e-5, rtol=0
        )
    assert not addon_module.blender.live._runtimes


def test_the_demos_comparison_gives_the_coarse_and_the_fine_bake(
    blender, addon_module, model_folder
):
    bpy = blender
    head = add_head(bpy, addon_module, model_folder)
    _keyframe_smile(bpy, head)
    demo = importlib.import_module(f"{addon_module.__name__}.blender.demo_scene")
    coarse, fine, controls = demo.coarse_and_fine(head, range(1, 5))
    assert [c.activations["zygomaticus_major_L"] for c in controls][::3] == [0.0, 1.0]
    baked = {}
    for skin in ("COARSE", "FINE"):
        head.physface.skin_stage = skin
        run = addon_module.blender.bake.simulate_range(bpy.context.scene, head, range(1, 5))
        baked[skin] = run.baked[head.name]
    indices = ict(addon_module, head)
    np.testing.assert_allclose(coarse[:, indices], baked["COARSE"], atol=2e-5, rtol=0)
    np.testing.assert_allclose(fine[:, indices], baked["FINE"], atol=2e-5, rtol=0)
    head.physface.skin_stage = "COARSE"
    with pytest.raises(RuntimeError, match="no fine skin"):
        demo.coarse_and_fine(head, range(1, 3))
