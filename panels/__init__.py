"""Blender UI: the PhysFace sidebar tab, property groups and add-on preferences."""

from . import preferences, properties, sidebar

_modules = (preferences, properties, sidebar)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
