"""A small untrained network model of the ``tiny`` rig, exported as a model folder.

Seeded random weights give skin rows that differ from the embedding (so a test can tell
the network stage from the embedded one) while rest stays exactly rest (the model adds its
own rest offset inside the exported graph). Needs torch and the tiny rig with its HR tables.
"""

import numpy as np

SIZES = {"encoding": 8, "widths": (8, 16), "k": 3, "upsample_hidden": 8, "decoder_hidden": (16,)}


def export_tiny_model(folder, seed: int = 0):
    """Export the model into ``folder`` (model.onnx + model.npz); returns the torch model."""
    import torch

    from physface.nets.model import SuperResolution
    from physface.nets.pairs import rig_pair_rest
    from physface.nets.runtime import export_model
    from physface.sim.face_model import load_face_model
    from physface.sim.rig import load_rig

    rig = load_rig("tiny")  # with the HR tables the model's neighbours come from
    rest = rig_pair_rest(rig, load_face_model().triangles())
    torch.manual_seed(seed)
    model = SuperResolution({**rest.arrays(), "key": rest.key}, **SIZES)
    model.fit_normalisation(
        np.full((1, rest.lr_count, 3), 0.2), np.full((1, rest.skin_count, 3), 0.2)
    )
    export_model(model, folder, skin_vertices=rest.skin_vertices)
    return model


def export_foreign_model(model, folder, skin_vertices, shift_cm: float):
    """``model`` exported as if trained on another LR lattice: every rest node moved by
    ``shift_cm`` along x and another key (the nodes decide whether a model fits a rig)."""
    import copy

    import torch

    from physface.nets.runtime import export_model

    foreign = copy.deepcopy(model)
    with torch.no_grad():
        foreign.lr_rest[:, 0] += shift_cm
    export_model(foreign, folder, key="another-lattice", skin_vertices=skin_vertices)
    return foreign
