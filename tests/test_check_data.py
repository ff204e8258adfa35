"""``check-data``: every input file read as the rig build reads it, all problems at once."""

import json
import shutil

import pytest

from physface.__main__ import main
from physface.sim.data_paths import ICT_URL, find_data_folder
from physface.sim.face_model import check_data_folder, load_face_model


@pytest.fixture
def data_folder(tmp_path):
    """A complete FaceXModel folder: the real index, a real neutral mesh, and every
    identity and expression file a copy of the neutral mesh."""
    model = load_face_model()
    folder = tmp_path / "data" / "ICT-FaceKit" / "FaceXModel"
    folder.mkdir(parents=True)
    index = {
        "expressions": model.expression_names,
        "idx_to_landmark_verts": model.landmarks.tolist(),
    }
    (folder / "vertex_indices.json").write_text(json.dumps(index))
    lines = [f"v {x} {y} {z}" for x, y, z in model.neutral.tolist()]
    lines += [f"vt {u} {v}" for u, v in model.uvs.tolist()] + ["f 1/1 2/2 3/3 4/4"]
    (folder / "generic_neutral_mesh.obj").write_text("\n".join(lines) + "\n")
    for name in [f"identity{i:03d}" for i in range(100)] + model.expression_names:
        (folder / f"{name}.obj").symlink_to(folder / "generic_neutral_mesh.obj")
    return folder


def replace_line(path, number, text):
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.unlink()
    path.write_text("\n".join(lines) + "\n")


def test_every_problem_is_listed_at_once(data_folder, capsys):
    replace_line(data_folder / "identity007.obj", 12, "v 1.0 abc 2.0")
    replace_line(data_folder / "generic_neutral_mesh.obj", 26720, "vt 0.5 x")
    (data_folder / "jawOpen.obj").unlink()
    assert main(["check-data", "--data", str(data_folder.parent.parent)]) == 1
    problems = capsys.readouterr().err.splitlines()
    assert len(problems) == 3 and all(p.startswith("physface: error: ") for p in problems)
    assert any(f"{data_folder / 'jawOpen.obj'} is missing" in p for p in problems)
    assert any("identity007.obj, line 12: 'v 1.0 abc 2.0'" in p for p in problems)
    assert any("generic_neutral_mesh.obj, line 26720: 'vt 0.5 x'" in p for p in problems)


def test_a_broken_index_file_is_listed_and_the_meshes_still_read(data_folder):
    index = json.loads((data_folder / "vertex_indices.json").read_text())
    index["idx_to_landmark_verts"][3] = "chin"
    (data_folder / "vertex_indices.json").write_text(json.dumps(index))
    replace_line(data_folder / "identity099.obj", 5, "v 1 2 three")
    problems = check_data_folder(data_folder.parent.parent)
    assert len(problems) == 2, problems
    assert "vertex_indices.json is not the ICT-FaceKit vertex index file" in problems[0]
    assert "identity099.obj, line 5" in problems[1]


def test_a_damaged_archive_is_a_problem_not_a_traceback(tmp_path, capsys):
    archive = tmp_path / "ICT-FaceKit" / "FaceXModel.tar.xz"
    archive.parent.mkdir()
    shutil.copy(find_data_folder().ict_source, archive)
    with open(archive, "r+b") as handle:
        handle.seek(archive.stat().st_size // 4)
        handle.write(b"\xff" * 16)
    assert main(["check-data", "--data", str(tmp_path)]) == 1
    (problem,) = capsys.readouterr().err.splitlines()
    assert f"{archive} is damaged" in problem and ICT_URL in problem


def test_the_published_data_passes(capsys):
    assert main(["check-data"]) == 0
    out = capsys.readouterr().out
    assert f"data folder: {find_data_folder().root}" in out and "no problems found" in out


def test_a_sound_folder_passes_and_its_source_is_named(data_folder, capsys):
    assert main(["check-data", "--data", str(data_folder.parent.parent)]) == 0
    out = capsys.readouterr().out
    assert "(set by the --data argument)" in out and "no problems found" in out
