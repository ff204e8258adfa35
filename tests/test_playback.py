"""The playback pipeline (``sim/playback.py``) on the ``tiny`` rig: the frame rule, one
validation, the skin stage it calls, and the presets' action units.

The player is what the live handler, the bake, the batch render and the benchmarks call,
so these tests pin what each of them shows for a frame.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from physface.sim.anatomy import JawPose
from physface.sim.controls import Controls
from physface.sim.errors import ControlError


@pytest.fixture(scope="module")
def rig():
    from physface.sim.rig import load_rig

    return load_rig("tiny", with_hr=False)


def _controls(rig, frame: int) -> Controls:
    """A small performance: every muscle ramps and the jaw opens with the frame."""
    return Controls(
        activations={name: min(1.0, 0.15 * frame) for name in rig.muscle_names[::3]},
        jaw=JawPose(opening_deg=2.5 * frame),
    )


def _player(rig):
    from physface.sim.playback import HeadPlayer

    return HeadPlayer(rig, tolerance=1e-4, max_iterations=200)


def test_the_player_is_the_simulator_then_the_skin_stage_then_the_lids(rig):
    from physface.sim.eyelids import EyelidLayer
    from physface.sim.simulator import Simulator
    from physface.sim.skin_stage import EmbeddedSkinStage

    player = _player(rig)
    simulator = Simulator(rig, tolerance=1e-4, max_iterations=200)
    stage, lids = EmbeddedSkinStage(rig), EyelidLayer(rig)
    for frame in (1, 2, 3):
        played = player.play(frame, _controls(rig, frame))
        result = simulator.step(_controls(rig, frame))
        expected = stage(result.volume_positions, result.head_transform, result.jaw_transform)
        activations = np.array([_controls(rig, frame).activations.get(n, 0.0)
                                for n in rig.muscle_names], dtype=np.float32)  # fmt: skip
        expected = lids(expected, result.head_transform, activations)
        np.testing.assert_array_equal(played.positions, expected)
        np.testing.assert_array_equal(played.activations, activations)
    assert played.positions.shape == (len(rig.ict_rest_positions), 3)
    assert played.positions.dtype == np.float32
    assert np.abs(played.positions - rig.ict_rest_positions).max() > 0.3  # cm: it moved


def test_a_jump_starts_from_rest_and_the_next_frame_continues(rig):
    player, direct = _player(rig), _player(rig)
    for frame in (1, 2, 3):
        player.play(frame, _controls(rig, frame))
    jumped = player.play(7, _controls(rig, 7)).positions.copy()
    np.testing.assert_array_equal(jumped, direct.play(7, _controls(rig, 7)).positions)
    following = player.play(8, _controls(rig, 8)).positions.copy()
    np.testing.assert_array_equal(following, direct.play(8, _controls(rig, 8)).positions)
    # from rest the same frame converges elsewhere within the tolerance, not bit for bit:
    fresh = _player(rig).play(8, _controls(rig, 8)).positions
    assert np.abs(fresh - following).max() < 0.05  # cm


def test_the_same_frame_again_continues_from_the_shown_state(rig):
    """A slider edit re-plays the shown frame warm: it lands where a cold start lands."""
    player = _player(rig)
    player.play(4, _controls(rig, 4))
    edited = Controls(activations={rig.muscle_names[0]: 1.0}, jaw=JawPose(opening_deg=5.0))
    warm = player.play(4, edited)
    cold = _player(rig).play(4, edited)
    assert warm.result.converged and cold.result.converged
    # not reset: a cold start is deterministic, so only a warm start can differ from it
    assert not np.array_equal(warm.positions, cold.positions)
    assert np.abs(warm.positions - cold.positions).max() < 0.02  # cm


def _overlapping_player(rig):
    """A player whose skin stage lets the next frame simulate beside it (as the network's
    does): the real embedded stage, its ``overlaps`` switched on for this player."""
    player = _player(rig)
    player.embedded_stage = player.skin_stage = type(player.skin_stage)(rig)
    player.skin_stage.overlaps = True
    return player


def test_the_lookahead_gives_every_frame_bit_for_bit(rig):
    """Frame f + 1 simulated beside frame f's skin is taken when the guess was right, and
    thrown away (the simulator back at the shown frame) when the frame's controls differ,
    the timeline jumps or the frame is played again: the same positions as without it."""
    looking, plain = _overlapping_player(rig), _player(rig)
    other = Controls(activations={rig.muscle_names[1]: 0.7}, jaw=JawPose(opening_deg=4.0))
    # (frame, its controls, the guess for the next frame)
    plan = [
        (1, _controls(rig, 1), _controls(rig, 2)),
        (2, _controls(rig, 2), _controls(rig, 3)),  # taken
        (3, _controls(rig, 3), _controls(rig, 4)),  # taken
        (4, other, _controls(rig, 5)),  # a wrong guess: frame 4 had other controls
        (4, _controls(rig, 4), _controls(rig, 5)),  # the same frame again: guess not taken
        (5, _controls(rig, 5), _controls(rig, 6)),  # taken
        (9, _controls(rig, 9), _controls(rig, 10)),  # a jump
        (10, _controls(rig, 10), None),  # taken
    ]
    threads = []  # the thread of every simulated frame
    advance = looking.simulator.advance

    def recorded(*args):
        threads.append(threading.current_thread().name.startswith("physface-lookahead"))
        return advance(*args)

    looking.simulator.advance = recorded
    for frame, controls, following in plan:
        ahead = looking.play(frame, controls, following)
        expected = plain.play(frame, controls)
        np.testing.assert_array_equal(ahead.positions, expected.positions)
        assert ahead.result.iterations == expected.result.iterations
        assert ahead.timings["simulation_ms"] > 0
    # frames 1, 4, 4 again and 9 simulated when asked; 2, 3, 5 and 10 taken from the 7
    # lookaheads (2, 3, 4, 5, 5, 6, 10)
    assert threads.count(False) == 4 and threads.count(True) == 7
    assert looking._ahead is None  # the last call announced no next frame


def test_the_lookahead_runs_only_beside_a_stage_that_overlaps(rig):
    player = _player(rig)  # the embedded stage: nothing to hide the simulation behind
    played = player.play(1, _controls(rig, 1), _controls(rig, 2))
    assert player._ahead is None
    assert played.timings["simulation_wait_ms"] == pytest.approx(
        played.timings["simulation_ms"], rel=0.5
    )


def test_a_lookahead_under_bad_controls_is_left_to_its_own_frame(rig):
    player = _overlapping_player(rig)
    name = rig.muscle_names[0]
    player.play(1, _controls(rig, 1), Controls(activations={name: float("nan")}))
    with pytest.raises(ControlError, match=name):
        player.play(2, Controls(activations={name: float("nan")}))
    again = player.play(3, _controls(rig, 3))
    assert again.result.converged


def test_warnings_reach_the_caller_and_bad_controls_leave_the_player_working(rig):
    player = _player(rig)
    name = rig.muscle_names[0]
    played = player.play(1, Controls(activations={name: 1.8}))
    assert any(name in w and "clamped" in w for w in played.warnings)
    with pytest.raises(ControlError, match=name):
        player.play(2, Controls(activations={name: float("nan")}))
    again = player.play(3, Controls())
    assert again.result.converged and again.warnings == []


def test_every_preset_unit_reaches_a_muscle_or_the_jaw():
    """Presets and performances resolve action units one way: lid closure (AU43) reaches
    the palpebral orbicularis in both (the "pain" preset used to drop it)."""
    from physface.sim.expressions import EXPRESSIONS, expression
    from physface.sim.performances import load_performance_book, unit_activations

    book = load_performance_book()
    known = set(book.unit_muscles) | set(book.jaw_units) | set(book.ignored_units)
    for name, (units, _) in EXPRESSIONS.items():
        assert set(units) <= known, name
    lids = unit_activations(book, {"AU43": 0.5})
    assert lids == {"orbicularis_oculi_palpebral_L": 0.5, "orbicularis_oculi_palpebral_R": 0.5}
    pain = expression("pain", book)
    assert pain.activations["orbicularis_oculi_L"] == pytest.approx(0.9)  # AU7: the squint
    assert pain.activations["orbicularis_oculi_palpebral_L"] == pytest.approx(0.5)  # AU43
    assert expression("surprise", book).activations["levator_palpebrae_R"] == 1.0  # AU5
    assert expression("anger", book).activations == unit_activations(book, EXPRESSIONS["anger"][0])
