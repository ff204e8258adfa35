"""The forehead's bone nodes gliding along the bone (sim/sliding.py's Glide in the
simulator's global step) on the tiny rig: a brow raise goes further with it, the nodes
stay on their bone planes, which move with the head, every iteration lowers the energy,
and the many-row glide (conjugate gradients on the multipliers) finds the same step as the
few-row one (responses for every factor)."""

import numpy as np
import pytest

from physface.sim.controls import Controls
from physface.sim.performances import load_performance_book, unit_activations
from physface.sim.simmesh import FREE, SKULL
from physface.sim.simulator import Material, Simulator
from physface.sim.skin_stage import EmbeddedSkinStage
from physface.sim.sliding import FOREHEAD_BAND, sliding_nodes

SLIDING = Material(forehead_sliding=True)
FIXED = Material(forehead_sliding=False)
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
    nodes, normals = sliding_nodes(
        mesh.rest_positions, mesh.tets, mesh.node_labels, rig.anatomy.skin_positions
    )
    assert len(nodes) > 5
    assert (mesh.node_labels[nodes] == SKULL).all()
    y = mesh.rest_positions[nodes, 1]
    assert ((y > FOREHEAD_BAND["y_cm"][0]) & (y < FOREHEAD_BAND["y_cm"][1])).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)
    assert normals[:, 2].mean() > 0.3  # the forehead's flesh lies in front of the bone
    assert Simulator(rig, material=FIXED).sliding_nodes.size == 0  # off when fixed


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
    assert result.sliding_gap_cm < 1e-5  # on the bone to the glide's tolerance


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


def test_the_many_row_glide_and_the_preconditioned_path_find_the_same_frames(rig, monkeypatch):
    """Conjugate gradients on the multipliers (HR default's 1,680 rows) against the exact
    responses (LR's few), and a frame solved by CG between factorisations against one
    factored for its own activations: the same positions to the solver's tolerance."""
    book = load_performance_book()
    frames = [
        Controls(activations=unit_activations(book, {"AU1": a, "AU2": a, "AU4": 0.5 * a}))
        for a in (1.0, 0.96, 0.92)  # within the refactoring threshold of the first
    ]

    def run(material):
        sim = Simulator(rig, tolerance=1e-6, max_iterations=400, material=material)
        results = [sim.step(controls) for controls in frames]
        return sim, results

    reference, exact = run(Material(refactor_activation_change=0.0))  # a factor each frame
    assert reference.glide.explicit and reference.factorizations == 4
    cg, between = run(SLIDING)
    assert cg.factorizations == 2  # frames 2 and 3 by CG on the first frame's factor
    monkeypatch.setattr("physface.sim.sliding.EXPLICIT_LIMIT", 0)
    many, rows = run(Material(refactor_activation_change=0.0))
    assert not many.glide.explicit and many.glide.inner_iterations > 0
    edge = reference.mean_edge_cm
    for a, b, c in zip(exact, between, rows, strict=True):
        assert a.converged and b.converged and c.converged
        assert max(a.sliding_gap_cm, b.sliding_gap_cm, c.sliding_gap_cm) < 1e-6
        np.testing.assert_allclose(b.volume_positions, a.volume_positions, atol=1e-3 * edge)
        np.testing.assert_allclose(c.volume_positions, a.volume_positions, atol=1e-3 * edge)


def test_a_state_with_a_many_row_glide_continues_bit_for_bit(rig, monkeypatch):
    """The reference coupling preconditions the many-row glide, so the state carries what
    it was built for and whether it is due to be rebuilt (here after every frame)."""
    from physface.sim.simulator import SimulatorState

    monkeypatch.setattr("physface.sim.sliding.EXPLICIT_LIMIT", 0)
    monkeypatch.setattr("physface.sim.sliding.REFRESH_ABOVE", 0.0)
    book = load_performance_book()
    frames = [
        Controls(activations=unit_activations(book, {"AU1": a, "AU2": a, "AU4": 1.0 - a}))
        for a in (0.3, 0.7, 1.0, 0.6)
    ]
    one = Simulator(rig, tolerance=1e-5, max_iterations=200)
    one.step(frames[0])
    one.step(frames[1])
    saved = SimulatorState.from_arrays(one.state().to_arrays())
    assert saved.glide_reference is not None and saved.glide_stale
    expected = [one.step(controls).volume_positions for controls in frames[2:]]
    assert one.glide.references >= 3  # rebuilt after each frame
    two = Simulator(rig, tolerance=1e-5, max_iterations=200)
    two.set_state(saved)
    for controls, positions in zip(frames[2:], expected, strict=True):
        np.testing.assert_array_equal(two.step(controls).volume_positions, positions)
