"""The eyelid layer (``sim/eyelids.py``) on the ``tiny`` rig: blinks close the lids over
the eyes without entering them, the levator widens, relaxed lids leave the skin stage's
face as it was, and the layer follows the head and the frame rule.

A 2.4 cm lattice holds no lid at all, so these are the lids an artist gets on every rig.
ICT's neutral face already seats the posterior lid margin up to 0.6 mm into the eyeball
mesh (the lid's seal on the eye), so "inside the eyeball" is measured beyond the rest
state.
"""

from __future__ import annotations

import numpy as np
import pytest

from physface.sim.controls import Controls
from physface.sim.eyelids import LOWER, UPPER, _radial_gap

BLINK = {"orbicularis_oculi_palpebral_L": 1.0, "orbicularis_oculi_palpebral_R": 1.0}
WIDEN = {"levator_palpebrae_L": 1.0, "levator_palpebrae_R": 1.0}


@pytest.fixture(scope="module")
def rig():
    from physface.sim.rig import load_rig

    return load_rig("tiny", with_hr=False)


def _player(rig):
    from physface.sim.playback import HeadPlayer

    return HeadPlayer(rig, tolerance=1e-4, max_iterations=200)


def _play(rig, activations, **controls):
    player = _player(rig)
    return player.play(0, Controls(activations=activations, **controls)).positions.copy()


def _front_margin(rig, positions, eye, side):
    lids = rig.lids
    chosen = (lids.margin_eye == eye) & (lids.margin_side == side) & (lids.margin_ring == 1)
    return positions[lids.vertices[lids.margin[chosen]]].astype(np.float64)


def _gaps_over_middle(rig, positions, eye, share=0.8):
    """Distance (cm) from each upper-margin vertex in the middle ``share`` of the margin to
    the lower margin's polyline."""
    upper = _front_margin(rig, positions, eye, UPPER)
    lower = _front_margin(rig, positions, eye, LOWER)
    skip = int(round(0.5 * (1.0 - share) * (len(upper) - 1)))
    start, end = lower[:-1], lower[1:]
    segment = end - start
    gaps = []
    for point in upper[skip : len(upper) - skip]:
        t = np.clip(((point - start) * segment).sum(1) / (segment * segment).sum(1), 0.0, 1.0)
        gaps.append(np.linalg.norm(start + t[:, None] * segment - point, axis=1).min())
    return np.array(gaps)


def _depth_beyond_rest(rig, positions):
    """How far (cm) any lid vertex lies deeper inside its eyeball than at rest."""
    lids, worst = rig.lids, 0.0
    for eye in (0, 1):
        on = lids.vertices[lids.eye == eye]
        centre, table = lids.eye_centres[eye].astype(np.float64), lids.eye_radius[eye]
        now = _radial_gap(positions[on].astype(np.float64), centre, table)
        rest = _radial_gap(rig.ict_rest_positions[on].astype(np.float64), centre, table)
        worst = max(worst, float((np.maximum(-now, 0.0) - np.maximum(-rest, 0.0)).max()))
    return worst


def _middle_of_upper_margin(rig, positions, eye=0):
    upper = _front_margin(rig, positions, eye, UPPER)
    return upper[len(upper) // 2]


def test_a_full_blink_closes_both_eyes_without_entering_them(rig):
    rest = _play(rig, {})
    assert _gaps_over_middle(rig, rest, 0).max() > 0.8  # cm: the neutral eye is open
    blink = _play(rig, BLINK)
    for eye in (0, 1):
        assert _gaps_over_middle(rig, blink, eye).max() <= 0.05  # cm: 0.5 mm
    assert _depth_beyond_rest(rig, blink) <= 0.01  # cm: 0.1 mm
    travel = _middle_of_upper_margin(rig, blink) - _middle_of_upper_margin(rig, rest)
    assert travel[1] <= -0.689  # cm down: the published blink's low end (6.89 mm)
    # The lashes ride the upper lid down.
    lashes = rig.lids.followers[np.isin(rig.lids.followers, np.arange(len(rest)))]
    upper_lashes = lashes[rest[lashes, 1] > _middle_of_upper_margin(rig, rest)[1] - 0.1]
    assert (blink[upper_lashes, 1] - rest[upper_lashes, 1]).mean() < -0.4


def test_half_a_blink_half_closes(rig):
    open_gap = _gaps_over_middle(rig, _play(rig, {}), 0).max()
    half = {name: 0.5 for name in BLINK}
    half_gap = _gaps_over_middle(rig, _play(rig, half), 0).max()
    assert 0.3 * open_gap < half_gap < 0.7 * open_gap


def test_the_levator_widens_the_eye(rig):
    rest, widened = _play(rig, {}), _play(rig, WIDEN)
    rise = _middle_of_upper_margin(rig, widened)[1] - _middle_of_upper_margin(rig, rest)[1]
    assert rise > 0.15  # cm
    lower = _front_margin(rig, widened, 0, LOWER) - _front_margin(rig, rest, 0, LOWER)
    assert np.abs(lower).max() < 0.03  # the lower lid stays
    assert _depth_beyond_rest(rig, widened) <= 0.01


def test_relaxed_lids_leave_the_skin_stages_face_as_it_was(rig):
    from physface.sim.eyelids import EyelidLayer
    from physface.sim.simulator import Simulator
    from physface.sim.skin_stage import EmbeddedSkinStage

    rest = Simulator(rig, tolerance=1e-4, max_iterations=200).step(Controls())
    np.testing.assert_array_equal(_play(rig, {}), EmbeddedSkinStage(rig)(
        rest.volume_positions, rest.head_transform, rest.jaw_transform))  # fmt: skip
    # A face the skin stage moved, lids pulled forward off the eyes: nothing to do.
    layer = EyelidLayer(rig)
    moved = rig.ict_rest_positions.copy()
    moved[rig.lids.vertices] += (0.0, 0.05, 0.2)
    moved[:100] += 0.3
    relaxed = np.zeros(len(rig.muscle_names), dtype=np.float32)
    np.testing.assert_array_equal(layer(moved.copy(), np.eye(4), relaxed), moved)
    assert layer.iterations == 0
    # The same face with one lid muscle on: only lid, lash and shell rows change.
    relaxed[rig.muscle_names.index("orbicularis_oculi_palpebral_L")] = 1.0
    closed = layer(moved.copy(), np.eye(4), relaxed)
    changed = np.flatnonzero(np.abs(closed - moved).max(axis=1) > 0)
    assert set(changed) <= set(rig.lids.vertices) | set(rig.lids.followers)
    assert len(changed) > 100


def test_a_squint_cannot_push_a_lid_into_the_eye(rig):
    from physface.sim.simulator import Simulator
    from physface.sim.skin_stage import EmbeddedSkinStage

    squint = {"orbicularis_oculi_L": 1.0, "orbicularis_oculi_R": 1.0}
    result = Simulator(rig, tolerance=1e-4, max_iterations=200).step(Controls(activations=squint))
    embedded = EmbeddedSkinStage(rig)(
        result.volume_positions, result.head_transform, result.jaw_transform
    )
    assert _depth_beyond_rest(rig, embedded) > 0.03  # the lattice alone pushes a lid in
    assert _depth_beyond_rest(rig, _play(rig, squint)) <= 0.01
    assert _depth_beyond_rest(rig, _play(rig, {**squint, **BLINK})) <= 0.01


def test_the_lids_turn_with_the_head(rig):
    angle = np.radians(30.0)
    turn = np.eye(4)
    turn[:3, :3] = [
        [np.cos(angle), 0, np.sin(angle)],
        [0, 1, 0],
        [-np.sin(angle), 0, np.cos(angle)],
    ]
    turn[:3, 3] = (2.0, -1.0, 3.0)
    upright = _play(rig, BLINK)
    turned = _play(rig, BLINK, head_transform=turn)
    expected = upright @ turn[:3, :3].T + turn[:3, 3]
    lids = rig.lids.vertices
    assert np.abs(turned[lids] - expected[lids]).max() < 0.01  # cm


def test_a_blink_played_frame_by_frame_ends_where_a_jump_lands(rig):
    player = _player(rig)
    for frame, level in enumerate((0.25, 0.5, 0.75, 1.0, 1.0)):
        played = player.play(frame, Controls(activations={n: level for n in BLINK}))
    jumped = _play(rig, BLINK)
    lids = rig.lids.vertices
    assert np.abs(played.positions[lids] - jumped[lids]).max() < 0.02  # cm
