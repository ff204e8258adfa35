"""Controls beyond what they can mean (issue 16): a fractional spring index is refused,
gravity and spring stiffness beyond the physical bounds clamp with a warning that reaches
the played frame (and so the panel), and the clamped frame stays bounded."""

import numpy as np
import pytest

from physface.sim.controls import (
    MAX_GRAVITY,
    MAX_SPRING_STIFFNESS,
    Controls,
    JawPose,
    PointSpring,
    validate_controls,
)
from physface.sim.errors import ControlError

NAMES = ["frontalis_L", "frontalis_R"]


@pytest.mark.parametrize("index", [3.7, -1, "3", None, True])
def test_a_spring_index_that_is_not_a_whole_number_is_refused(index):
    for spring in (PointSpring(index, (0, 0, 0), 1e5), (index, (0, 0, 0), 1e5)):
        with pytest.raises(ControlError, match=r"point_springs\[0\]\.index"):
            validate_controls(Controls(point_springs=(spring,)), NAMES)


def test_whole_number_indices_pass_unchanged():
    springs = (PointSpring(np.int32(12), (0, 0, 0), 1e5), (7.0, (1, 2, 3), 1e5))
    clean, warnings = validate_controls(Controls(point_springs=springs), NAMES)
    assert [s.index for s in clean.point_springs] == [12, 7]
    assert all(type(s.index) is int for s in clean.point_springs) and warnings == []


def test_gravity_beyond_ten_g_clamps_keeping_its_direction():
    clean, warnings = validate_controls(Controls(gravity=(0.0, -1e9, 1e9)), NAMES)
    assert np.linalg.norm(clean.gravity) == pytest.approx(MAX_GRAVITY, rel=1e-12)
    np.testing.assert_allclose(np.array(clean.gravity) / MAX_GRAVITY, [0, -(0.5**0.5), 0.5**0.5])
    assert len(warnings) == 1 and "gravity" in warnings[0] and "clamped" in warnings[0]
    clean, warnings = validate_controls(Controls(gravity=(0.0, -981.0, 0.0)), NAMES)
    assert clean.gravity == (0.0, -981.0, 0.0) and warnings == []


def test_spring_stiffness_beyond_the_bound_clamps_with_a_warning():
    springs = (PointSpring(3, (0, 0, 0), 1e15), PointSpring(4, (0, 0, 0), 1e6))
    clean, warnings = validate_controls(Controls(point_springs=springs), NAMES)
    assert [s.stiffness for s in clean.point_springs] == [MAX_SPRING_STIFFNESS, 1e6]
    assert len(warnings) == 1 and "point_springs[0].stiffness" in warnings[0]


@pytest.fixture(scope="module")
def player():
    from physface.sim.playback import HeadPlayer
    from physface.sim.rig import load_rig

    return HeadPlayer(load_rig("tiny", with_hr=False), max_iterations=60)


def test_huge_gravity_gives_a_bounded_frame_and_a_warning(player):
    rest = player.rig.ict_rest_positions
    player.reset()
    played = player.play(0, Controls(gravity=(0.0, -1e9, 0.0)))
    assert any("gravity" in w for w in played.warnings)
    moved = np.linalg.norm(played.positions - rest, axis=1)
    assert np.isfinite(played.positions).all() and moved.max() < 3.0  # cm, not metres
    player.reset()
    ten_g = player.play(0, Controls(gravity=(0.0, -MAX_GRAVITY, 0.0))).positions.copy()
    player.reset()
    again = player.play(0, Controls(gravity=(0.0, -1e9, 0.0))).positions
    np.testing.assert_array_equal(again, ten_g)  # the clamped frame is the 10 g frame


def test_huge_spring_stiffness_plays_as_the_bound(player):
    vertex = int(player.rig.lr_skin.vertices[len(player.rig.lr_skin.vertices) // 2])
    target = tuple(player.rig.ict_rest_positions[vertex] + np.float32([0.5, 0.0, 0.0]))
    player.reset()
    huge = player.play(0, Controls(point_springs=(PointSpring(vertex, target, 1e15),)))
    assert any("stiffness" in w for w in huge.warnings)
    huge_positions = huge.positions.copy()
    player.reset()
    bound = player.play(
        0, Controls(point_springs=(PointSpring(vertex, target, MAX_SPRING_STIFFNESS),))
    )
    np.testing.assert_array_equal(huge_positions, bound.positions)
    assert np.linalg.norm(huge_positions[vertex] - target) < 0.1  # held near the target
    assert np.abs(huge_positions - player.rig.ict_rest_positions).max() < 2.0


def test_same_controls_compares_every_value():
    from physface.sim.controls import Sphere, same_controls

    base = Controls(
        activations={"a": 0.5}, jaw=JawPose(opening_deg=3.0), gravity=(0.0, -981.0, 0.0)
    )
    assert same_controls(base, Controls(activations={"a": 0.5}, jaw=JawPose(opening_deg=3.0),
                                        gravity=(0.0, -981.0, 0.0)))  # fmt: skip
    assert not same_controls(base, Controls(activations={"a": 0.5000001}, jaw=base.jaw,
                                            gravity=base.gravity))  # fmt: skip
    assert not same_controls(base, Controls(activations={"a": 0.5, "b": 0.0}, jaw=base.jaw,
                                            gravity=base.gravity))  # fmt: skip
    assert not same_controls(base, Controls(activations=base.activations, jaw=base.jaw))
    moved = np.eye(4)
    moved[0, 3] = 1e-6
    assert not same_controls(base, Controls(base.activations, base.jaw, moved, base.gravity))
    ball = Sphere(centre=(0.0, 0.0, 12.0), radius=2.0)
    assert same_controls(Controls(colliders=(ball,)), Controls(colliders=(ball,)))
    assert not same_controls(Controls(colliders=(ball,)), Controls())
