"""PhysFace: a physics-based face for Blender (Park et al. 2024, Yang et al. 2024).

Registration imports only the Blender layers (``blender``, then ``operators`` and
``panels`` above it); torch, warp and scipy load lazily on first use. Outside Blender the
package is importable as ``physface`` for the command line and the tests: nothing here
touches bpy at import time.
"""


def register():
    from . import blender, operators, panels

    blender.register()
    operators.register()
    panels.register()


def unregister():
    from . import blender, operators, panels

    panels.unregister()
    operators.unregister()
    blender.unregister()
