"""Blender operators: each turns its properties into a library call and writes the result."""

from . import check_data

_modules = (check_data,)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
