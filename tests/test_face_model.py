"""The ICT importer: the published folder's contents, the cache, and damaged files."""

import json
import time

import numpy as np
import pytest

from physface.sim.data_paths import find_data_folder
from physface.sim.errors import DataError
from physface.sim.face_model import REGIONS, VERTEX_COUNT, import_face_model, load_face_model


def test_model_has_the_published_contents():
    model = load_face_model()
    assert model.neutral.shape == (VERTEX_COUNT, 3) and model.neutral.dtype == np.float32
    assert model.identity_deltas.shape == (100, VERTEX_COUNT, 3)
    assert model.expression_deltas.shape == (53, VERTEX_COUNT, 3)
    assert "jawOpen" in model.expression_names and len(model.landmarks) == 68
    assert len(model.polygon_starts) - 1 == 26384  # README: 26,384 polygons
    assert REGIONS["face"] == (0, 9409)
    # jawOpen moves the chin down by centimetres; an identity mode changes the face.
    chin = model.landmarks[8]
    assert model.expression_deltas[model.expression_names.index("jawOpen"), chin, 1] < -1.0
    assert np.abs(model.identity_deltas[0]).max() > 0.1


def test_cached_reload_is_fast_and_equal():
    first = load_face_model()
    clock = time.perf_counter()
    again = load_face_model()
    assert time.perf_counter() - clock < 1.0
    np.testing.assert_array_equal(first.neutral, again.neutral)
    np.testing.assert_array_equal(first.polygon_vertices, again.polygon_vertices)


@pytest.fixture
def small_folder(tmp_path):
    """A FaceXModel folder with the real index file and a real neutral mesh."""
    source = find_data_folder()
    model = load_face_model()
    folder = tmp_path / "data" / "ICT-FaceKit" / "FaceXModel"
    folder.mkdir(parents=True)
    index = {"expressions": model.expression_names, "idx_to_landmark_verts": []}
    (folder / "vertex_indices.json").write_text(json.dumps(index))
    lines = [f"v {x} {y} {z}" for x, y, z in model.neutral.tolist()]
    lines += [f"vt {u} {v}" for u, v in model.uvs.tolist()]
    lines += ["f 1/1 2/2 3/3"]
    (folder / "generic_neutral_mesh.obj").write_text("\n" + "\n".join(lines) + "\n")
    del source
    return folder


def test_truncated_obj_names_the_file(small_folder):
    path = small_folder / "generic_neutral_mesh.obj"
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:5000]))
    with pytest.raises(DataError, match="generic_neutral_mesh.obj: .*truncated"):
        import_face_model(find_data_folder(small_folder.parent.parent))


def test_foreign_obj_names_the_file(small_folder):
    (small_folder / "generic_neutral_mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(DataError, match=r"generic_neutral_mesh.obj: 3 vertices"):
        import_face_model(find_data_folder(small_folder.parent.parent))


def test_missing_shape_file_is_named(small_folder):
    with pytest.raises(DataError, match=r"browDown_L.obj is missing \(and 152 more\)"):
        import_face_model(find_data_folder(small_folder.parent.parent))
