"""The built linux-x64 zip installs, enables, disables and uninstalls in headless Blender;
from it, a default head plays the fine skin (the bundled ONNX Runtime and shipped model)."""

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from blender_helpers import load_tool, shape_key_positions

REPO_ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "linux-x64"
ZIP_REPO = "physface_zip_test"
MODEL_FILES = ("model.onnx", "model.npz", "README.md")


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory):
    """The linux-x64 zip built by tools/build_extension.py (downloads the wheels if missing)."""
    tool = load_tool("build_extension")
    manifest = tool.MANIFEST.read_bytes()
    try:
        tool.prepare([PLATFORM])
        (zip_path,) = tool.build([PLATFORM], tmp_path_factory.mktemp("dist"))
    except tool.BuildError as err:
        pytest.fail(f"cannot build the {PLATFORM} extension zip: {err}")
    finally:
        if tool.MANIFEST.read_bytes() != manifest:
            tool.MANIFEST.write_bytes(manifest)
    return zip_path


def _repo_index(bpy, module):
    repos = bpy.context.preferences.extensions.repos
    return next(i for i, repo in enumerate(repos) if repo.module == module)


def test_zip_installs_enables_and_uninstalls(linux_zip, physface_addon, leftovers, tmp_path):
    import bpy

    addons = bpy.context.preferences.addons
    bpy.ops.preferences.addon_disable(module=physface_addon)
    try:
        assert leftovers(bpy) == []
        assert "check_data" not in dir(bpy.ops.physface)
        bpy.ops.preferences.extension_repo_add(
            name=ZIP_REPO,
            type="LOCAL",
            use_custom_directory=True,
            custom_directory=str(tmp_path / ZIP_REPO),
        )
        repos = bpy.context.preferences.extensions.repos
        repo_module = next(r.module for r in repos if Path(r.directory) == tmp_path / ZIP_REPO)
        addon = f"bl_ext.{repo_module}.physface"
        try:
            result = bpy.ops.extensions.package_install_files(
                filepath=str(linux_zip), repo=repo_module, enable_on_install=True
            )
            assert result == {"FINISHED"}
            assert addon in addons
            installed = tmp_path / ZIP_REPO / "physface"
            assert Path(sys.modules[addon].__file__).parent == installed
            assert "check_data" in dir(bpy.ops.physface)
            assert addons[addon].preferences.bl_rna.identifier == "PHYSFACE_AP_preferences"

            with zipfile.ZipFile(linux_zip) as zf:
                wheels = sorted(Path(n).name for n in zf.namelist() if n.startswith("wheels/"))
            assert wheels and all("manylinux" in w for w in wheels), wheels
            assert sorted(p.name for p in (installed / "wheels").iterdir()) == wheels
            site = Path(bpy.utils.user_resource("EXTENSIONS")) / ".local"
            dist_infos = {p.name for p in site.glob("lib/python*/site-packages/*.dist-info")}
            for wheel in wheels:
                assert "-".join(wheel.split("-")[:2]) + ".dist-info" in dist_infos, wheel

            # The add operator works from the installed zip (tiny rig, from the cache), with
            # the data folder set through the add-on preference as an artist would.
            addons[addon].preferences.data_folder = str(REPO_ROOT.parent / "shared" / "data")
            assert bpy.ops.physface.add_head(rig_preset="tiny") == {"FINISHED"}
            head = bpy.context.active_object
            assert head.physface.is_head and len(head.children) == 2
            assert head.physface.last_error == ""
            assert "PhysFace" in head.data.shape_keys.key_blocks

            # A default head plays the fine skin: ONNX Runtime and the model come from the zip.
            with zipfile.ZipFile(linux_zip) as zf:
                names = set(zf.namelist())
            assert {f"models/default/{n}" for n in MODEL_FILES} <= names
            assert any(Path(n).name.startswith("onnxruntime-") for n in names)
            assert bpy.ops.physface.add_head(rig_preset="default") == {"FINISHED"}
            fine = bpy.context.active_object
            props = fine.physface
            assert props.last_error == "" and props.skin_note == ""
            assert props.skin_stage == "FINE" and props.skin_in_use == "fine · default (shipped)"
            live = sys.modules[f"{addon}.blender.live"]
            assert live.model_folder(props) == installed / "models" / "default"
            rest = shape_key_positions(fine).copy()
            props.activations.zygomaticus_major_L = 1.0
            assert props.last_error == "" and props.skin_ms > 0
            assert (
                np.linalg.norm(shape_key_positions(fine) - rest, axis=1).max() > 0.1
            )  # cm: it smiles
            bpy.ops.wm.read_homefile(use_factory_startup=True)

            bpy.ops.preferences.addon_disable(module=addon)
            assert addon not in addons
            assert leftovers(bpy) == []
            result = bpy.ops.extensions.package_uninstall(
                repo_index=_repo_index(bpy, repo_module), pkg_id="physface"
            )
            assert result == {"FINISHED"}
            assert not installed.exists()
        finally:
            bpy.ops.preferences.extension_repo_remove(
                index=_repo_index(bpy, repo_module), remove_files=True
            )
        assert "check_data" not in dir(bpy.ops.physface)
    finally:
        bpy.ops.preferences.addon_enable(module=physface_addon)
    assert physface_addon in addons
    assert "check_data" in dir(bpy.ops.physface)
