"""The forehead's bone nodes gliding along the bone (sim/sliding.py and the simulator's
sliding constraint) on the tiny rig: off by default, a brow raise goes further with it, the
nodes stay on their bone planes, which move with the head, and every iteration lowers the
energy the constraint adds to."""

import numpy as np
import pytest

from physface.sim.controls import Controls
from physface.sim.performances import load_performance_book, unit_activations
from physface.sim.simmesh import FREE, SKULL
from physface.sim.simulator import Material, Simulator
from physface.sim.skin_stage import EmbeddedSkinStage
from physface.sim.sliding import FOREHEAD_BAND, sliding_nodes

# Stiff enough to hold the sliding nodes within 0.1 mm of the bone with flesh at κ = 20×
# shear (3e7 left 0.12 mm).
SLIDING = Material(sliding_stiffness=6e7)
FIXED = Material(sliding_stiffness=0.0)
BROW = 4114  # ICT vertex of landmark 24, the middle of the left brow


@pytest.fixture(scope="module")
def rig():
    from physface.sim.rig import load_rig

    return load_rig("tiny", with_hr=False)


@pytest.fixture(scope="module")
def brow_raise():
    return Controls(activations=unit_activations(load_performance_book(), {"AU1": 1.0, "AU2": 1.0}))


def test_sliding_nodes_are_forehead_bone_nodes_with_normals_into_the_flesh(rig):
    mesh = rig.lr
    nodes, normals = sliding_nodes(mesh.rest_positions, mesh.tets, mesh.node_labels)
    assert len(nodes) > 5
    assert (mesh.node_labels[nodes] == SKULL).all()
    y = mesh.rest_positions[nodes, 1]
    assert ((y > FOREHEAD_BAND["y_cm"][0]) & (y < FOREHEAD_BAND["y_cm"][1])).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    assert normals[:, 2].mean() > 0.3  # the forehead's flesh lies in front of the bone
    assert Simulator(rig, material=FIXED).sliding_nodes.size == 0  # off at zero stiffness


def test_a_brow_raise_goes_further_when_the_forehead_slides(rig, brow_raise):
    skin = EmbeddedSkinStage(rig)
    rest = rig.ict_rest_positions[BROW, 1]
    raised = {}
    for label, material in (("fixed", FIXED), ("sliding", SLIDING)):
        sim = Simulator(rig, tolerance=1e-4, max_iterations=300, material=material)
        result = sim.step(brow_raise)
        positions = skin(result.volume_positions, result.head_transform, result.jaw_transform)
        raised[label] = 10.0 * (positions[BROW, 1] - rest)  # mm
        assert result.converged, label
    assert raised["sliding"] > raised["fixed"] + 0.5, raised  # measured: 1.42 → 2.63 mm
    assert result.sliding_gap_cm < 0.01  # the nodes stay within 0.1 mm of the bone


def test_the_sliding_nodes_follow_a_moving_head_and_the_energy_falls(rig, brow_raise):
    sim = Simulator(rig, tolerance=1e-6, max_iterations=80, material=SLIDING)
    head = np.eye(4)
    angle = np.radians(25.0)
    head[:3, :3] = [
        [np.cos(angle), 0, np.sin(angle)],
        [0, 1, 0],
        [-np.sin(angle), 0, np.cos(angle)],
    ]
    head[:3, 3] = (2.0, -1.0, 3.0)
    at_rest = sim.step(Controls(head_transform=head))
    moved_rest = sim.rest_positions @ head[:3, :3].T + head[:3, 3]
    np.testing.assert_allclose(at_rest.volume_positions, moved_rest, atol=1e-4)
    assert at_rest.sliding_gap_cm < 1e-5
    sim.reset()
    energies = np.array(sim.step(brow_raise).energy_history)
    assert len(energies) > 5 and energies[-1] < energies[0]
    assert np.all(np.diff(energies) <= 1e-6 * abs(energies[0]))
    assert (rig.lr.node_labels[sim.sliding_nodes] != FREE).all()  # the rig is untouched
