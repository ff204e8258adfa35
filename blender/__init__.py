"""The bpy layer below operators and panels: head objects, the live handler, property
groups, preferences, bakes, snapshot rendering, batch work and the demo scene.

Imports ``sim`` (and later ``nets``), never ``operators`` or ``panels``. Registration
covers what must exist before operators and panels: preferences, property groups and the
frame-change handler.
"""

from . import live, preferences, properties

_modules = (preferences, properties, live)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
