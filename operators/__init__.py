"""Blender operators: each turns its properties into a library call and writes the result."""

from . import add_head, bake, check_data, expression, live

_modules = (check_data, add_head, expression, bake, live)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
