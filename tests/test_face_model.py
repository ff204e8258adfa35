"""The ICT importer: the published folder's contents, the cache, and damaged files."""

import json
import shutil

import numpy as np
import pytest

from physface.sim import cache
from physface.sim.data_paths import ICT_URL, find_data_folder
from physface.sim.errors import DataError
from physface.sim.face_model import (
    REGIONS,
    VERTEX_COUNT,
    FaceModel,
    face_model_key,
    import_face_model,
    load_face_model,
)


@pytest.fixture(scope="module")
def fresh():
    """The face model imported from the published files now, without the cache."""
    return load_face_model(use_cache=False)


def assert_same_model(a: FaceModel, b: FaceModel):
    for name in FaceModel.__dataclass_fields__:
        left, right = getattr(a, name), getattr(b, name)
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype and left.shape == right.shape, name
            np.testing.assert_array_equal(left, right, err_msg=name)
        else:
            assert left == right, name


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


def test_cached_load_equals_a_fresh_import(fresh):
    assert_same_model(load_face_model(), fresh)


def test_damaged_cache_entry_is_rebuilt_with_one_line(fresh, tmp_path, monkeypatch):
    """A bad CRC in the cached .npz: removed, imported again, said once, then read."""
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    path = tmp_path / "cache" / "face_model" / f"ict_{face_model_key()}.npz"
    path.parent.mkdir(parents=True)
    cache.write_arrays(path, {n: getattr(fresh, n) for n in FaceModel.__dataclass_fields__})
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # inside identity_deltas' data: its CRC fails
    path.write_bytes(bytes(damaged))
    lines = []
    assert_same_model(load_face_model(log=lines.append), fresh)
    assert len(lines) == 1
    assert lines[0].startswith(f"PhysFace: the cached face model at {path} was unreadable (")
    assert "CRC" in lines[0] and lines[0].endswith("; rebuilding it.")
    assert_same_model(load_face_model(log=lines.append), fresh)
    assert len(lines) == 1  # the rebuilt entry reads cleanly


@pytest.fixture
def small_folder(tmp_path):
    """A FaceXModel folder with the real index file and a real neutral mesh."""
    model = load_face_model()
    folder = tmp_path / "data" / "ICT-FaceKit" / "FaceXModel"
    folder.mkdir(parents=True)
    index = {
        "expressions": model.expression_names,
        "idx_to_landmark_verts": model.landmarks.tolist(),
    }
    (folder / "vertex_indices.json").write_text(json.dumps(index))
    lines = [f"v {x} {y} {z}" for x, y, z in model.neutral.tolist()]
    lines += [f"vt {u} {v}" for u, v in model.uvs.tolist()]
    lines += ["f 1/1 2/2 3/3", "f 2/2 3/3 4/4"]
    (folder / "generic_neutral_mesh.obj").write_text("\n".join(lines) + "\n")
    return folder


def complete(folder):
    """Give every identity and expression file (copies of the neutral mesh)."""
    index = json.loads((folder / "vertex_indices.json").read_text())
    names = [f"identity{i:03d}" for i in range(100)] + index["expressions"]
    for name in names:
        (folder / f"{name}.obj").symlink_to(folder / "generic_neutral_mesh.obj")
    return folder


def edit_line(path, number, text):
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


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


def test_text_in_a_vertex_names_the_file_and_line(small_folder):
    edit_line(small_folder / "generic_neutral_mesh.obj", 1234, "v 1.0 abc 2.0")
    with pytest.raises(DataError, match=r"generic_neutral_mesh.obj, line 1234: 'v 1.0 abc 2.0'"):
        import_face_model(find_data_folder(small_folder.parent.parent))


def test_text_in_an_identity_vertex_names_that_file_and_line(small_folder):
    complete(small_folder)
    path = small_folder / "identity042.obj"
    path.unlink()
    shutil.copy(small_folder / "generic_neutral_mesh.obj", path)
    edit_line(path, 7, "v nan 1.0 2.0")
    with pytest.raises(DataError, match=r"identity042.obj, line 7: 'v nan 1.0 2.0' is not"):
        import_face_model(find_data_folder(small_folder.parent.parent))


def test_text_in_a_polygon_names_the_file_and_line(small_folder):
    path = small_folder / "generic_neutral_mesh.obj"
    edit_line(path, VERTEX_COUNT + len(load_face_model().uvs) + 2, "f x/1 2/2 3/3")
    with pytest.raises(DataError, match=r"generic_neutral_mesh.obj, line \d+: 'f x/1 2/2 3/3'"):
        import_face_model(find_data_folder(small_folder.parent.parent))


def test_damaged_archive_says_so_and_where_to_get_a_fresh_copy(tmp_path):
    """Bytes flipped in the middle of FaceXModel.tar.xz: a DataError, not LZMAError."""
    archive = tmp_path / "ICT-FaceKit" / "FaceXModel.tar.xz"
    archive.parent.mkdir()
    data = bytearray(find_data_folder().ict_source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        import_face_model(find_data_folder(tmp_path))
    message = str(caught.value)
    assert f"{archive} is damaged" in message and ICT_URL in message


def test_key_follows_the_content_of_every_input(small_folder):
    root = small_folder.parent.parent
    complete(small_folder)
    before = face_model_key(root)
    edit_line(small_folder / "generic_neutral_mesh.obj", 10, "v 0.5 0.5 0.5")
    assert face_model_key(root) != before


def test_key_is_the_same_through_a_symlink(small_folder, tmp_path):
    complete(small_folder)
    link = tmp_path / "elsewhere"
    link.symlink_to(small_folder.parent.parent, target_is_directory=True)
    assert face_model_key(link) == face_model_key(small_folder.parent.parent)


def test_archive_key_is_the_same_for_a_copy_through_a_symlink(tmp_path):
    shared = find_data_folder()
    (tmp_path / "copy" / "ICT-FaceKit").mkdir(parents=True)
    shutil.copy(shared.ict_source, tmp_path / "copy" / "ICT-FaceKit" / "FaceXModel.tar.xz")
    (tmp_path / "link").symlink_to(tmp_path / "copy", target_is_directory=True)
    assert face_model_key(tmp_path / "link") == face_model_key(shared.root)
