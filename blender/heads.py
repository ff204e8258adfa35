"""PhysFace head objects: which objects make a head, their ICT vertex map, poll helpers.

A head is three objects: the head (role "head") and its teeth and eyes children. Each
mesh carries the ``physface_ict`` attribute (its vertices' ICT indices) and the
"PhysFace" shape key that playback writes into.
"""

from __future__ import annotations

import numpy as np

SHAPE_KEY = "PhysFace"
ICT_ATTRIBUTE = "physface_ict"


def is_head(obj) -> bool:
    """True for the head object itself (not its teeth or eyes)."""
    return obj is not None and obj.physface.is_head and obj.physface.role == "head"


def head_objects(obj) -> list:
    """The head and its teeth/eyes children that receive positions."""
    return [obj, *[c for c in obj.children if c.physface.role in ("teeth", "eyes")]]


def scene_heads(scene) -> list:
    """Every head object of a scene."""
    return [o for o in scene.objects if is_head(o)]


def ict_indices(obj) -> np.ndarray:
    """The ICT vertex index (int64) of each vertex of a head object's mesh."""
    attribute = obj.data.attributes.get(ICT_ATTRIBUTE)
    if attribute is None:
        raise RuntimeError(f"{obj.name} has lost its {ICT_ATTRIBUTE} attribute; add a new head.")
    indices = np.empty(len(obj.data.vertices), dtype=np.int32)
    attribute.data.foreach_get("value", indices)
    return indices.astype(np.int64)


def muscle_names(obj) -> list[str]:
    """The muscle slider names of a head (the float properties of its activations)."""
    rna = obj.physface.activations.bl_rna
    return [p.identifier for p in rna.properties if p.type == "FLOAT"]


def active_head(context):
    """The active object's head (the head itself, or the parent of its teeth/eyes)."""
    obj = context.active_object
    if obj is None or not obj.physface.is_head:
        return None
    return obj if obj.physface.role == "head" else obj.parent


def poll_active_head(operator_class, context) -> bool:
    """Operator poll: the active object must be a PhysFace head (says so when not)."""
    if not is_head(context.active_object):
        operator_class.poll_message_set("Select a PhysFace head")
        return False
    return True
