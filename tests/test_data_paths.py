"""The data folder setting: resolution order and errors that say what to do."""

import pytest

from physface.sim import data_paths
from physface.sim.errors import DataError


def test_shared_folder_is_the_default(monkeypatch):
    monkeypatch.delenv(data_paths.ENV_VAR, raising=False)
    folder = data_paths.find_data_folder()
    assert folder.root == data_paths.default_data_root()
    assert folder.ict_source.name in ("FaceXModel", "FaceXModel.tar.xz")


def test_explicit_setting_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data_paths.ENV_VAR, str(tmp_path / "env"))
    (tmp_path / "explicit").mkdir()
    assert data_paths.resolve_data_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_missing_folder_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data_paths.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(DataError, match="PHYSFACE_DATA does not exist"):
        data_paths.find_data_folder()


def test_folder_without_face_model_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="ICT-FaceKit"):
        data_paths.find_data_folder(tmp_path)


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
