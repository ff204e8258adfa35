"""Test harness: an isolated Blender configuration and the add-on registered once.

HOME and Blender's user resources point at a temporary folder before bpy is imported, so
no test reads or writes a real user configuration. The working folder is registered as a
local extension repository (``physface_dev``) and the add-on is enabled from it for the
session, exactly as Blender loads an installed extension. The derived-data cache stays in
the repository's ``.cache`` (``PHYSFACE_CACHE``) so built rigs survive between sessions.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PHYSFACE_CACHE", str(REPO_ROOT / ".cache"))
os.environ.setdefault("WARP_CACHE_PATH", str(REPO_ROOT / ".cache" / "warp"))
_HOME = Path(tempfile.mkdtemp(prefix="physface-test-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["HOME"] = str(_HOME)
os.environ["BLENDER_USER_RESOURCES"] = str(_HOME / "blender")

DEV_REPO_NAME = "physface_dev"
DEV_ADDON = f"bl_ext.{DEV_REPO_NAME}.physface"


@pytest.fixture
def leftovers():
    """A function listing PhysFace classes, handlers and properties still in Blender."""
    return _physface_leftovers


def _physface_leftovers(bpy) -> list[str]:
    """Classes, handlers and properties of PhysFace still registered in Blender."""
    found = [name for name in dir(bpy.types) if name.startswith("PHYSFACE_")]
    found += [name for name in dir(bpy.types) if "_PT_physface" in name]
    for handlers_name in dir(bpy.app.handlers):
        handlers = getattr(bpy.app.handlers, handlers_name)
        if isinstance(handlers, list):
            found += [
                f"{handlers_name}:{h.__module__}.{h.__name__}"
                for h in handlers
                if "physface" in getattr(h, "__module__", "")
            ]
    found += [f"Object.{p}" for p in ("physface",) if hasattr(bpy.types.Object, p)]
    return found


@pytest.fixture(scope="session")
def physface_addon():
    """Enable the add-on from the working folder as a local extension; yield its module."""
    import bpy

    repo_dir = _HOME / "dev-extensions" / DEV_REPO_NAME
    repo_dir.mkdir(parents=True)
    (repo_dir / "physface").symlink_to(REPO_ROOT, target_is_directory=True)
    bpy.ops.preferences.extension_repo_add(
        name=DEV_REPO_NAME, type="LOCAL", use_custom_directory=True, custom_directory=str(repo_dir)
    )
    bpy.ops.preferences.addon_enable(module=DEV_ADDON)
    yield DEV_ADDON
    if DEV_ADDON in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_disable(module=DEV_ADDON)


@pytest.fixture
def blender(physface_addon):
    """bpy with the add-on enabled and a factory-fresh file before and after the test."""
    import bpy

    bpy.ops.wm.read_homefile(use_factory_startup=True)
    yield bpy
    bpy.ops.wm.read_homefile(use_factory_startup=True)


@pytest.fixture
def addon_module(physface_addon):
    """The add-on's package as Blender imported it (``bl_ext.physface_dev.physface``)."""
    return sys.modules[physface_addon]
