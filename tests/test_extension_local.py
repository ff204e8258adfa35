"""The working folder as a local extension: enable, disable and re-enable cleanly."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_session_addon_registers_operators_and_preferences(blender, physface_addon):
    bpy = blender
    assert physface_addon in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons[physface_addon].preferences
    assert prefs.bl_rna.identifier == "PHYSFACE_AP_preferences"
    assert bpy.ops.physface.check_data() == {"FINISHED"}


def test_disable_enable_twice_leaves_nothing_behind(blender, physface_addon, leftovers):
    bpy = blender
    for _ in range(2):
        bpy.ops.preferences.addon_disable(module=physface_addon)
        assert physface_addon not in bpy.context.preferences.addons
        assert leftovers(bpy) == []
        bpy.ops.preferences.addon_enable(module=physface_addon)
        assert physface_addon in bpy.context.preferences.addons
        assert hasattr(bpy.types, "PHYSFACE_OT_check_data")


def test_registration_imports_no_heavy_dependency(tmp_path):
    # Registration must stay instant and work without torch; warp and scipy load lazily.
    # A fresh process, since other tests in this one import them on purpose.
    script = f"""
import os, sys, pathlib
os.environ["HOME"] = {str(tmp_path)!r}
os.environ["BLENDER_USER_RESOURCES"] = {str(tmp_path / "blender")!r}
import bpy
repo = pathlib.Path({str(tmp_path / "dev")!r})
repo.mkdir()
(repo / "physface").symlink_to({str(REPO_ROOT)!r}, target_is_directory=True)
bpy.ops.preferences.extension_repo_add(
    name="dev", type="LOCAL", use_custom_directory=True, custom_directory=str(repo))
bpy.ops.preferences.addon_enable(module="bl_ext.dev.physface")
assert hasattr(bpy.types, "PHYSFACE_OT_check_data")
print("HEAVY", sorted({{"torch", "warp", "scipy"}} & set(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY []" in result.stdout, result.stdout[-2000:]


def test_check_data_reports_a_missing_folder(blender, physface_addon, tmp_path):
    bpy = blender
    prefs = bpy.context.preferences.addons[physface_addon].preferences
    prefs.data_folder = str(tmp_path / "nowhere")
    try:
        try:
            bpy.ops.physface.check_data()
        except RuntimeError as error:  # bpy turns an ERROR report into RuntimeError
            assert "does not exist" in str(error) and "ICT-FaceKit" in str(error)
        else:
            raise AssertionError("check_data accepted a missing data folder")
    finally:
        prefs.data_folder = ""
