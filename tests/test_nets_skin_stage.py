"""The network skin stage (nets/skin_stage.py) on the ``tiny`` rig with a small model
exported in the test: the face rows are the model's output for the LR frame taken into the
head frame and brought back; a rigidly moved rest frame gives the rigidly moved rest face;
the other vertices are the embedded stage's; a missing or foreign model is refused."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from tiny_model import export_foreign_model, export_tiny_model  # noqa: E402

from physface.nets.pairs import in_head_frame  # noqa: E402
from physface.nets.runtime import ModelError, TorchUpsampler  # noqa: E402
from physface.nets.skin_stage import (  # noqa: E402
    LATTICE_TOLERANCE_CM,
    NetworkSkinStage,
    model_fits,
    rig_lattice_key,
)
from physface.sim.anatomy import JawPose  # noqa: E402
from physface.sim.controls import Controls  # noqa: E402
from physface.sim.playback import HeadPlayer  # noqa: E402
from physface.sim.skin_stage import EmbeddedSkinStage  # noqa: E402


def _rotation(degrees_about_y: float, degrees_about_x: float) -> np.ndarray:
    a, b = np.radians(degrees_about_y), np.radians(degrees_about_x)
    about_y = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return about_y @ about_x


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from physface.sim.rig import load_rig

    folder = tmp_path_factory.mktemp("model")
    model = export_tiny_model(folder)
    return load_rig("tiny", with_hr=False), folder, model


def test_face_rows_are_the_models_output_in_the_head_frame(exported):
    rig, folder, model = exported
    stage = NetworkSkinStage(rig, folder, threads=1)
    player = HeadPlayer(rig, stage, max_iterations=40)
    head = np.eye(4)
    head[:3, :3], head[:3, 3] = _rotation(20, -10), (1.5, -2.0, 0.7)
    controls = Controls(activations={rig.muscle_names[0]: 0.8}, jaw=JawPose(opening_deg=8.0),
                        head_transform=head)  # fmt: skip
    played = player.play(1, controls)
    volume = played.result.volume_positions
    positions = stage(volume, head, played.result.jaw_transform)  # before the eyelid layer
    local = in_head_frame(volume[None], head[None])[0]
    expected = TorchUpsampler(model)(local) @ head[:3, :3].T.astype(np.float32) + head[:3, 3]
    np.testing.assert_allclose(positions[stage.vertices], expected, atol=1e-4, rtol=0)
    embedded = EmbeddedSkinStage(rig, "lr")(volume, head, played.result.jaw_transform)
    others = np.setdiff1d(np.arange(len(embedded)), stage.vertices)
    np.testing.assert_array_equal(positions[others], embedded[others])
    moved = np.linalg.norm(positions[stage.vertices] - embedded[stage.vertices], axis=1)
    assert moved.max() > 1e-3  # the network's rows are its own, not the embedding's


def test_a_rigidly_moved_rest_frame_gives_the_rigidly_moved_rest_face(exported):
    rig, folder, _ = exported
    stage = NetworkSkinStage(rig, folder, threads=1)
    head = np.eye(4)
    head[:3, :3], head[:3, 3] = _rotation(-35, 15), (-3.0, 1.0, 4.0)
    volume = (rig.lr.rest_positions @ head[:3, :3].T + head[:3, 3]).astype(np.float32)
    skin = stage(volume, head, head)
    expected = rig.ict_rest_positions @ head[:3, :3].T + head[:3, 3]
    np.testing.assert_allclose(skin, expected, atol=1e-4, rtol=0)


def test_missing_and_foreign_models_are_refused(exported, tmp_path):
    rig, folder, model = exported
    with pytest.raises(ModelError, match="missing"):
        NetworkSkinStage(rig, tmp_path / "nowhere")
    foreign = tmp_path / "foreign"
    export_foreign_model(model, foreign, model_rows(folder), shift_cm=10 * LATTICE_TOLERANCE_CM)
    with pytest.raises(ModelError, match="another LR lattice"):
        NetworkSkinStage(rig, foreign)
    assert not model_fits(rig, foreign) and model_fits(rig, folder)
    assert not model_fits(rig, tmp_path / "nowhere")
    assert rig_lattice_key(rig) == model.key


def test_a_key_that_differs_by_rounding_alone_still_fits(exported, tmp_path):
    """The key hashes float32 bits; nodes within the tolerance are the same lattice."""
    rig, folder, model = exported
    rounded = tmp_path / "rounded"
    export_foreign_model(model, rounded, model_rows(folder), shift_cm=LATTICE_TOLERANCE_CM / 4)
    assert model_fits(rig, rounded)
    stage = NetworkSkinStage(rig, rounded, threads=1)
    assert stage.upsampler.key == "another-lattice"


def model_rows(folder) -> np.ndarray:
    with np.load(folder / "model.npz") as stored:
        return stored["skin_vertices"]
