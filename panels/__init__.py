"""Blender UI: the PhysFace sidebar tab (names operators by id, never imports them)."""

from . import sidebar


def register():
    sidebar.register()


def unregister():
    sidebar.unregister()
