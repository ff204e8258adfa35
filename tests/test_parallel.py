"""The local step split over the CPU's cores (``sim/parallel.py``): the same bits as one
launch, whatever the number of parts."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from physface.sim import solver_kernels as kernels
from physface.sim.controls import Controls
from physface.sim.parallel import SplitLaunch


@pytest.fixture(scope="module")
def simulator():
    from physface.sim.rig import load_rig
    from physface.sim.simulator import Simulator

    rig = load_rig("tiny", with_hr=False)
    simulator = Simulator(rig, tolerance=1e-4)
    simulator.step(Controls(activations={name: 0.8 for name in rig.muscle_names}))
    return simulator


def _local_step(simulator, parts: int):
    """The local step at the simulator's positions in ``parts`` → targets, energies and
    the rotations it leaves (each run on its own copy of the rotation guesses)."""
    s, count = simulator, simulator.element_count
    rotations = wp.array(s.element_rotations.numpy(), dtype=wp.quat, device=s.device)
    targets = wp.zeros(count, dtype=wp.mat33, device=s.device)
    energies = wp.zeros(count, dtype=float, device=s.device)

    def arguments(a, b):
        return (
            [s.vertex_positions, s.tet_indices[a:b], s.rest_inverse[a:b],
             s.element_actuations[a:b], s.shape_weights[a:b], s.volume_weights[a:b], 0,
             rotations[a:b]],
            [targets[a:b], energies[a:b]],
        )  # fmt: skip

    SplitLaunch(kernels.project_elements, count, arguments, s.device, parts=parts)()
    return targets.numpy(), energies.numpy(), rotations.numpy()


def test_a_split_local_step_is_one_launch_bit_for_bit(simulator):
    whole = _local_step(simulator, 1)
    assert np.abs(whole[1]).sum() > 0  # the muscles deform the elements: a real step
    for parts in (2, 3, 7):
        for split, one in zip(_local_step(simulator, parts), whole, strict=True):
            np.testing.assert_array_equal(split, one)


def test_the_simulator_splits_its_local_step(simulator):
    assert len(simulator._local_step.parts) == 2
    sizes = [part[1] for part in simulator._local_step.parts]
    assert sum(sizes) == simulator.element_count and max(sizes) - min(sizes) <= 1
