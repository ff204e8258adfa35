"""PhysFace: a physics-based face for Blender (Park et al. 2024, Yang et al. 2024).

Registration imports only the Blender layer (``panels``, ``operators``); torch, warp and
scipy load lazily on first use. Outside Blender the package is importable as ``physface``
for the command line and the tests: nothing here touches bpy at import time.
"""


def register():
    from . import operators, panels

    panels.register()
    operators.register()


def unregister():
    from . import operators, panels

    operators.unregister()
    panels.unregister()
