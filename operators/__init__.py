"""Blender operators: each turns its properties into one call of ``blender/`` and reports."""

from . import add_head, bake, check_data, expression

_modules = (check_data, add_head, expression, bake)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
