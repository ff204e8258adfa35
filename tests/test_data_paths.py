"""The data folder setting: resolution order and errors that say what to do and where the
path came from."""

import pickle

import pytest

from physface.sim import data_paths
from physface.sim.errors import DataError


def test_shared_folder_is_the_default(monkeypatch):
    monkeypatch.delenv(data_paths.ENV_VAR, raising=False)
    folder = data_paths.find_data_folder()
    assert folder.root == data_paths.default_data_root()
    assert folder.ict_source.name in ("FaceXModel", "FaceXModel.tar.xz")
    assert folder.origin == data_paths.FROM_DEFAULT


def test_explicit_setting_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data_paths.ENV_VAR, str(tmp_path / "env"))
    (tmp_path / "explicit").mkdir()
    assert data_paths.resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_missing_folder_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data_paths.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(DataError, match="set by the PHYSFACE_DATA variable does not exist"):
        data_paths.find_data_folder()


@pytest.mark.parametrize(
    ("make", "origin"),
    [
        (data_paths.data_argument, "set by the --data argument"),
        (data_paths.preference_setting, "set by the add-on preference 'Data folder'"),
        (str, "set by the --data argument or the add-on preference"),
    ],
)
def test_missing_explicit_folder_names_where_it_was_set(monkeypatch, tmp_path, make, origin):
    monkeypatch.setenv(data_paths.ENV_VAR, str(tmp_path))  # a valid variable is not blamed
    with pytest.raises(DataError) as caught:
        data_paths.find_data_folder(make(str(tmp_path / "missing")))
    assert str(caught.value).startswith(f"The data folder {origin} does not exist:")


def test_a_file_is_called_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(DataError, match=r"is a file, not a folder: .*notes\.txt"):
        data_paths.find_data_folder(data_paths.data_argument(str(tmp_path / "notes.txt")))


def test_setting_keeps_its_source_through_pickling():
    setting = data_paths.data_argument("/some/folder")
    again = pickle.loads(pickle.dumps(setting))
    assert again == "/some/folder" and again.source == data_paths.FROM_ARGUMENT


def test_folder_without_face_model_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"\(set by the --data argument\) has no ICT-FaceKit/"):
        data_paths.find_data_folder(data_paths.data_argument(str(tmp_path)))


def test_incomplete_face_model_lists_missing_files(tmp_path):
    (tmp_path / "ICT-FaceKit" / "FaceXModel").mkdir(parents=True)
    (tmp_path / "ICT-FaceKit" / "FaceXModel" / "vertex_indices.json").write_text("{}")
    with pytest.raises(DataError, match="missing generic_neutral_mesh.obj"):
        data_paths.find_data_folder(tmp_path)


def test_cli_reports_error_without_traceback(monkeypatch, tmp_path, capsys):
    from physface.__main__ import main

    monkeypatch.setenv(data_paths.ENV_VAR, str(tmp_path / "missing"))
    assert main(["check-data"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("physface: error:") and "Traceback" not in err


def test_cli_names_the_data_argument_not_the_preference(tmp_path, capsys):
    from physface.__main__ import main

    assert main(["check-data", "--data", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "set by the --data argument does not exist" in err and "preference" not in err
