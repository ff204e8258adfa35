"""The LR simulator on the ``tiny`` rig: rest, rigid motion, convergence, muscles, jaw,
volume, extreme poses, dynamics, colliders, springs, gravity and control validation.

Every tolerance is set to catch a real bug: a wrong sign, a missing term, a frame mixed up,
not round-off. Few frames each, so the file runs in well under a minute and a half.
"""

from __future__ import annotations

import numpy as np
import pytest

from physface.sim.anatomy import JAW_LIMITS, JawPose, apply_transform
from physface.sim.controls import Controls, Plane, PointSpring, Sphere, validate_controls
from physface.sim.errors import ControlError
from physface.sim.simmesh import JAW, SKULL
from physface.sim.tetmesh import signed_volumes


@pytest.fixture(scope="module")
def rig():
    """The tiny rig's LR parts (identical to the full rig's; no HR mesh needed here)."""
    from physface.sim.rig import load_rig

    return load_rig("tiny", with_hr=False)


@pytest.fixture(scope="module")
def face_model():
    from physface.sim.face_model import load_face_model

    return load_face_model()


@pytest.fixture(scope="module")
def sim(rig, face_model):
    from physface.sim.simulator import Simulator

    return Simulator(rig, tolerance=1e-4, max_iterations=200)


@pytest.fixture(scope="module")
def skin_stage(rig):
    from physface.sim.skin_stage import EmbeddedSkinStage

    return EmbeddedSkinStage(rig)


def _skin(stage, result) -> np.ndarray:
    """All ICT positions (V, 3) of a step result through the skin stage (a copy)."""
    return stage(result.volume_positions, result.head_transform, result.jaw_transform).copy()


@pytest.fixture
def fresh(sim):
    """The shared quasi-static simulator, back at rest."""
    sim.reset()
    return sim


def _rotation(axis, degrees) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_rotvec(np.radians(degrees) * np.asarray(axis)).as_matrix()
    return transform


def _busiest_muscle(rig) -> int:
    """The muscle with the most total weight on the tiny lattice."""
    return int(np.argmax(np.bincount(rig.lr_muscles.muscle, rig.lr_muscles.weight)))


def test_rest_controls_keep_the_rest_shape(fresh, skin_stage, face_model):
    result = fresh.step(Controls())
    assert np.abs(result.volume_positions - fresh.rest_positions).max() < 1e-4
    full = _skin(skin_stage, result)
    assert full.dtype == np.float32 and full.shape == face_model.neutral.shape
    assert np.abs(full - face_model.neutral).max() < 1e-4


def test_rigid_head_motion_moves_the_skin_rigidly(fresh, skin_stage, face_model):
    head = _rotation([0.3, 1.0, 0.2], 35.0)
    head[:3, 3] = [2.0, -1.0, 3.0]
    result = fresh.step(Controls(head_transform=head))
    full = _skin(skin_stage, result)
    assert np.abs(full - apply_transform(head, face_model.neutral)).max() < 1e-3


def test_the_skin_stage_is_the_skin_the_colliders_hold(fresh, skin_stage, face_model):
    """The embedded skin the contacts detect (Warp, on the simulator's nodes) is the skin
    the stage writes (numpy): one embedding, two evaluations that must agree."""
    nose_tip = face_model.neutral[face_model.landmarks[30]].astype(np.float64)
    plane = Plane(point=tuple(nose_tip - [0.0, 0.0, 0.4]), normal=(0.0, 0.0, -1.0))
    result = fresh.step(Controls(colliders=(plane,), jaw=JawPose(opening_deg=8.0)))
    fresh.contacts.skin_depths()
    detected = fresh.contacts.embedded_positions.numpy()
    written = _skin(skin_stage, result)[skin_stage.vertices]
    assert np.abs(written - face_model.neutral[skin_stage.vertices]).max() > 0.3  # it moved
    assert np.abs(detected - written).max() < 1e-4  # cm


def test_a_collider_enclosing_the_head_is_refused_at_once(fresh):
    with pytest.raises(ControlError, match="encloses|enclose") as caught:
        fresh.step(Controls(colliders=(Sphere((0.0, 0.0, 0.0), 1.0e6),)))
    assert "colliders[0]" in str(caught.value)
    fresh.reset()
    assert fresh.step(Controls()).converged  # the simulator goes on after the refusal


def test_a_state_continues_bit_for_bit(rig):
    from physface.sim.simulator import Simulator, SimulatorState

    controls = [Controls(activations={n: 0.1 * (i + 1) for n in rig.muscle_names},
                         jaw=JawPose(opening_deg=3.0 * i)) for i in range(3)]  # fmt: skip
    one = Simulator(rig, tolerance=1e-4)
    one.step(controls[0])
    saved = SimulatorState.from_arrays(one.state().to_arrays())
    expected = one.step(controls[1]).volume_positions
    two = Simulator(rig, tolerance=1e-4)
    two.set_state(saved)
    np.testing.assert_array_equal(two.step(controls[1]).volume_positions, expected)
    one.reset()
    two.reset()
    np.testing.assert_array_equal(
        one.step(controls[2]).volume_positions, two.step(controls[2]).volume_positions
    )


def test_each_iteration_lowers_the_energy(rig, face_model):
    from physface.sim.simulator import Simulator

    muscle = rig.muscle_names[_busiest_muscle(rig)]
    controls = Controls(activations={muscle: 1.0}, jaw=JawPose(opening_deg=12.0))
    for acceleration in ("none", "anderson"):
        sim = Simulator(rig, acceleration=acceleration,
                        tolerance=1e-5, max_iterations=60)  # fmt: skip
        energies = np.array(sim.step(controls).energy_history)
        assert len(energies) > 5
        assert energies[-1] < 0.5 * energies[0]
        # float32 kernels: allow round-off of 1e-6 of the starting energy, nothing more
        assert np.all(np.diff(energies) <= 1e-6 * energies[0]), acceleration


def test_the_fast_local_step_agrees_with_the_svd_reference(rig, face_model):
    from physface.sim.simulator import Simulator

    controls = Controls(activations={n: 0.8 for n in rig.muscle_names}, jaw=JawPose(14.0))
    positions = {}
    for polar in ("iterative", "svd"):
        # active muscle 40x flesh converges slower than the release-1 material: ~560 iterations
        sim = Simulator(rig, polar=polar, tolerance=1e-6,
                        max_iterations=900)  # fmt: skip
        result = sim.step(controls)
        assert result.converged, polar
        positions[polar] = result.volume_positions
    assert np.abs(positions["iterative"] - positions["svd"]).max() < 1e-3  # cm


def test_the_solve_reaches_the_residual_it_reports(rig, face_model):
    from physface.sim.simulator import Simulator

    sim = Simulator(rig, tolerance=1e-4, max_iterations=200,
                    extrapolate=False)  # fmt: skip
    controls = Controls(activations={n: 0.6 for n in rig.muscle_names}, jaw=JawPose(10.0))
    result = sim.step(controls)
    assert result.converged and result.residual <= 1e-4
    # One more plain iteration from the returned state moves no node further than reported.
    sim.tolerance, sim.max_iterations, sim.acceleration = 0.0, 1, "none"
    again = sim.step(controls)
    assert again.residual <= 1.5 * result.residual
    moved = np.linalg.norm(again.volume_positions - result.volume_positions, axis=1).max()
    assert moved <= 1.5 * result.residual * sim.mean_edge_cm + 1e-6


def test_an_active_muscle_shortens_its_fibres_and_moves_the_skin_over_it(
    fresh, rig, skin_stage, face_model
):
    muscle = rig.muscle_names.index("orbicularis_oris")
    result = fresh.step(Controls(activations={"orbicularis_oris": 1.0}))
    entries = rig.lr_muscles.muscle == muscle
    elements = rig.lr_muscles.element[entries]
    tets, rest = rig.lr.tets, rig.lr.rest_positions.astype(np.float64)

    def edges(x):
        return np.stack([x[tets[elements, i]] - x[tets[elements, 0]] for i in (1, 2, 3)], axis=2)

    deformation = edges(result.volume_positions.astype(np.float64)) @ np.linalg.inv(edges(rest))
    along = np.einsum("eij,ej->ei", deformation, rig.lr_muscles.fibre[entries])
    stretch = np.linalg.norm(along, axis=1)
    assert np.average(stretch, weights=rig.lr_muscles.weight[entries]) < 0.99

    rest_skin = face_model.neutral[skin_stage.vertices]
    moved = np.linalg.norm(_skin(skin_stage, result)[skin_stage.vertices] - rest_skin, axis=1)
    over = np.isin(fresh.embedding.elements, elements)
    far = np.linalg.norm(rest_skin - rest[tets[elements]].mean(axis=(0, 1)), axis=1) > 6.0
    assert over.any() and far.any()
    assert moved[over].mean() > 0.02  # cm
    assert moved[over].mean() > 10.0 * moved[far].mean()


def test_opening_the_jaw_lowers_the_chin_parts_the_lips_and_moves_the_teeth(
    fresh, rig, skin_stage, face_model
):
    pose = JawPose(opening_deg=20.0)
    result = fresh.step(Controls(jaw=pose))
    full = _skin(skin_stage, result)
    rest = face_model.neutral
    chin, upper_lip, lower_lip = face_model.landmarks[[8, 62, 66]]
    assert full[chin, 1] - rest[chin, 1] < -1.0  # cm: the chin drops by centimetres
    gap = np.linalg.norm(full[upper_lip] - full[lower_lip])
    assert gap - np.linalg.norm(rest[upper_lip] - rest[lower_lip]) > 0.5
    jaw = rig.anatomy.jaw_transform(pose)
    np.testing.assert_allclose(full[rig.jaw_vertices], apply_transform(jaw, rest[rig.jaw_vertices]),
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(full[rig.skull_vertices], rest[rig.skull_vertices], atol=1e-6)


def test_full_activation_keeps_the_tissue_volume(fresh, rig):
    result = fresh.step(Controls(activations={n: 1.0 for n in rig.muscle_names}))
    rest = signed_volumes(rig.lr.rest_positions, rig.lr.tets)
    now = signed_volumes(result.volume_positions, rig.lr.tets)
    assert np.abs(result.volume_positions - fresh.rest_positions).max() > 0.2  # it did move
    assert abs(now.sum() / rest.sum() - 1.0) < 0.01


def test_every_muscle_on_with_the_jaw_wide_open_inverts_nothing(fresh, rig, skin_stage):
    widest = JawPose(opening_deg=JAW_LIMITS["opening_deg"][1])
    result = fresh.step(Controls(activations={n: 1.0 for n in rig.muscle_names}, jaw=widest))
    assert (
        np.isfinite(result.volume_positions).all() and np.isfinite(_skin(skin_stage, result)).all()
    )
    assert np.isfinite(result.residual)
    labels = rig.lr.node_labels[rig.lr.tets]
    assert not ((labels == SKULL).any(axis=1) & (labels == JAW).any(axis=1)).any()
    volumes = signed_volumes(result.volume_positions, rig.lr.tets)
    assert volumes.min() > 0.0  # every element, the fixed ones included


def test_dynamics_at_rest_stays_at_rest(rig, face_model):
    from physface.sim.simulator import Simulator

    sim = Simulator(rig, dynamics=True, tolerance=1e-5)
    for _ in range(4):
        result = sim.step(Controls())
    assert np.abs(result.volume_positions - sim.rest_positions).max() < 1e-4
    assert np.abs(sim.velocities).max() < 1e-3


def test_motion_decays_after_a_head_shake(rig, face_model):
    from physface.sim.simulator import Simulator

    sim = Simulator(rig, dynamics=True, tolerance=1e-4,
                    time_step=1.0 / 60.0)  # fmt: skip
    for frame in range(6):
        sim.step(Controls(head_transform=_rotation([0, 1, 0], 25.0 * np.sin(frame * 1.3))))
    still = Controls(head_transform=_rotation([0, 1, 0], 25.0 * np.sin(6 * 1.3)))
    speeds = []
    for _ in range(8):
        sim.step(still)
        speeds.append(np.abs(sim.velocities).max())
    assert speeds[0] > 1.0  # cm/s: the flesh lags behind the shaking head
    assert speeds[-1] < 0.2 * speeds[0]


def test_a_sphere_pushed_into_the_cheek_leaves_no_skin_inside(fresh, skin_stage, face_model):
    cheek = int(np.argmin(np.linalg.norm(face_model.neutral[:9409] - [-5.0, -1.0, 8.0], axis=1)))
    point = face_model.neutral[cheek].astype(np.float64)
    outward = np.array([-0.7, 0.0, 0.7]) / np.linalg.norm([-0.7, 0.0, 0.7])
    radius = 1.5
    for depth in (0.3, 0.6, 0.9):  # push the sphere in over three frames
        centre = point + outward * (radius - depth)
        result = fresh.step(Controls(colliders=(Sphere(tuple(centre), radius),)))
    full = _skin(skin_stage, result)
    distance = np.linalg.norm(full[skin_stage.vertices] - centre, axis=1)
    assert distance.min() > radius - 0.005  # cm: nothing inside beyond 0.05 mm
    assert np.linalg.norm(full[cheek] - point) > 0.7  # the cheek gave way


def test_a_plane_holds_the_skin_behind_it(fresh, skin_stage, face_model):
    nose_tip = face_model.neutral[face_model.landmarks[30]].astype(np.float64)
    plane = Plane(point=tuple(nose_tip - [0.0, 0.0, 0.5]), normal=(0.0, 0.0, -1.0))
    result = fresh.step(Controls(colliders=(plane,)))
    skin = _skin(skin_stage, result)[skin_stage.vertices]
    assert skin[:, 2].max() < nose_tip[2] - 0.5 + 0.005


def test_lip_contact_keeps_the_lips_out_of_each_other(rig, face_model):
    from physface.sim.simulator import Simulator

    pressed = Controls(activations={"orbicularis_oris": 1.0}, jaw=JawPose(opening_deg=-2.0))
    free = Simulator(rig, tolerance=1e-4, lip_contact=False)
    touching = Simulator(rig, tolerance=1e-4, lip_contact=True)
    assert touching.contacts.lip_penetration_cm(touching.rest_positions) == 0.0
    passing = touching.contacts.lip_penetration_cm(free.step(pressed).volume_positions)
    result = touching.step(pressed)
    assert passing > 0.1  # cm: without contact the pressed lips pass into each other
    # A lip row holds its node against the other lip's tangent plane at the point where it
    # was found; sliding over tiny's coarse, strongly curved lip (one 2.4 cm lattice)
    # leaves 0.26 mm (0.19 before the orbicularis oris' peripheral ring, whose relaxed
    # stiffness around the lips stiffens them; the HR frames of a theme: <= 0.1 mm in most,
    # 0.36 mm at worst).
    assert result.lip_penetration_cm < 0.03


def test_a_point_spring_pulls_its_vertex_toward_the_target(fresh, skin_stage, face_model):
    vertex = int(face_model.landmarks[48])  # mouth corner
    target = face_model.neutral[vertex] + np.array([-1.0, 0.5, 0.0])
    spring = PointSpring(vertex, tuple(target), stiffness=1e6)
    result = fresh.step(Controls(point_springs=(spring,)))
    moved = _skin(skin_stage, result)[vertex] - face_model.neutral[vertex]
    assert 0.2 < np.dot(moved, target - face_model.neutral[vertex]) / 1.25 < 1.0


def test_gravity_sags_the_same_way_in_any_head_orientation(fresh):
    upright = fresh.step(Controls(gravity=(0.0, -981.0, 0.0)))
    sag = upright.volume_positions - fresh.rest_positions
    assert sag[:, 1].min() < -0.05 and sag[:, 1].mean() < 0.0
    fresh.reset()
    head = _rotation([1.0, 0.0, 0.0], 90.0)  # lying on the back: face up
    lying = fresh.step(Controls(head_transform=head, gravity=(0.0, -981.0, 0.0)))
    in_head = (lying.volume_positions - head[:3, 3]) @ head[:3, :3]  # back to the head frame
    local_gravity = head[:3, :3].T @ np.array([0.0, -981.0, 0.0])
    fresh.reset()
    expected = fresh.step(Controls(gravity=tuple(local_gravity))).volume_positions
    # equal to the solver's convergence (steps of 1e-4 of an edge; the iterations differ in
    # float32 round-off): 2.05e-3 cm measured with the exact glide, 25× below the sag's change
    assert np.abs(in_head - expected).max() < 3e-3
    assert np.abs(in_head - upright.volume_positions).max() > 0.05  # a different sag


def test_controls_validation(rig):
    names = rig.muscle_names
    with pytest.raises(ControlError, match="Unknown muscle 'zygomaticus'"):
        validate_controls(Controls(activations={"zygomaticus": 0.5}), names)
    with pytest.raises(ControlError, match=names[0]):
        validate_controls(Controls(activations={names[0]: float("nan")}), names)
    with pytest.raises(ControlError, match="opening_deg"):
        validate_controls(Controls(jaw=JawPose(opening_deg=float("inf"))), names)
    with pytest.raises(ControlError, match="gravity"):
        validate_controls(Controls(gravity=(0.0, float("nan"), 0.0)), names)
    with pytest.raises(ControlError, match="not rigid"):
        validate_controls(Controls(head_transform=np.diag([1.2, 1.0, 1.0, 1.0])), names)
    clean, warnings = validate_controls(
        Controls(activations={names[0]: 1.7, names[1]: -0.2}, jaw=JawPose(opening_deg=60.0)),
        names,
    )
    assert clean.activations == {names[0]: 1.0, names[1]: 0.0}
    assert clean.jaw.opening_deg == JAW_LIMITS["opening_deg"][1]
    assert len(warnings) == 3 and any(names[0] in w for w in warnings)


def test_step_reports_clamping_and_rejects_nan(fresh, rig):
    name = rig.muscle_names[0]
    result = fresh.step(Controls(activations={name: 2.0}))
    assert any("clamped" in w for w in result.warnings)
    with pytest.raises(ControlError):
        fresh.step(Controls(activations={name: float("nan")}))
