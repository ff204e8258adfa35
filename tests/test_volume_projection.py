"""The local step's volume target (sim/solver_kernels.py): the closest matrix with det = 1.
It must be the closest (projective dynamics lowers the energy only with exact local
minimisers) and continuous in F (a jump where an element's volume crosses from one method
to another made the HR amazement theme cycle: issue 19)."""

import numpy as np
import pytest
import warp as wp
from scipy.optimize import minimize

from physface.sim import solver_kernels as kernels


@wp.kernel
def _stretches(sigmas: wp.array(dtype=wp.vec3), out: wp.array(dtype=wp.vec3)):
    i = wp.tid()
    out[i] = kernels.unit_determinant_stretches(sigmas[i])


@wp.kernel
def _targets(matrices: wp.array(dtype=wp.mat33), out: wp.array(dtype=wp.mat33)):
    i = wp.tid()
    out[i] = kernels.unit_determinant_target(matrices[i])


def _run(kernel, values, dtype):
    inputs = wp.array(np.asarray(values, np.float32), dtype=dtype, device="cpu")
    out = wp.zeros(len(values), dtype=dtype, device="cpu")
    wp.launch(kernel, dim=len(values), inputs=[inputs], outputs=[out], device="cpu")
    return out.numpy().astype(np.float64)


def _closest(sigma: np.ndarray) -> np.ndarray:
    """The closest stretches with product 1, by SLSQP from several starts (reference)."""
    best = None
    starts = [sigma / np.cbrt(np.prod(sigma)), np.ones(3)]
    for k in range(3):  # shrink one direction
        start = sigma.copy()
        start[k] = 1.0 / np.prod(np.delete(sigma, k))
        starts.append(start)
    for start in starts:
        result = minimize(
            lambda s: np.sum((s - sigma) ** 2),
            start,
            constraints={"type": "eq", "fun": lambda s: np.log(np.prod(s))},
            bounds=[(1e-6, None)] * 3,
            method="SLSQP",
            options={"ftol": 1e-14, "maxiter": 500},
        )
        if result.success and (best is None or result.fun < best.fun):
            best = result
    return best.x


@pytest.mark.parametrize(
    "sigma",
    [
        (1.1, 0.95, 1.02),
        (1.6, 1.3, 1.1),
        (2.0, 1.4, 0.8),
        (1.7, 1.6, 0.9),
        (2.5, 1.8, 1.2),
        (3.0, 0.5, 1.5),
        (0.6, 0.7, 0.8),
    ],  # fmt: skip
)
def test_the_stretches_are_the_closest_with_product_one(sigma):
    sigma = np.array(sigma)
    found = _run(_stretches, [sigma], wp.vec3)[0]
    assert abs(np.prod(found) - 1.0) < 1e-5
    reference = _closest(sigma)
    distance, best = np.linalg.norm(found - sigma), np.linalg.norm(reference - sigma)
    assert distance <= best + 1e-5, (found, reference)
    if np.prod(sigma) > 2.0:  # where the uniform scaling used to stand in: it is farther
        uniform = sigma / np.cbrt(np.prod(sigma))
        assert distance < np.linalg.norm(uniform - sigma) - 1e-3


def test_the_target_is_continuous_as_an_element_dilates():
    """F = R·diag(σ)·Qᵀ with σ scaled through volumes 0.4 … 3 (across the Gauss-Newton
    window 0.5-2 and the plus roots' end): consecutive targets differ like consecutive F."""
    rng = np.random.default_rng(3)
    rotations = [np.linalg.qr(rng.normal(size=(3, 3)))[0] for _ in range(2)]
    rotations = [r * np.sign(np.linalg.det(r)) for r in rotations]
    shape = np.array([1.5, 1.1, 0.6])
    scales = np.linspace(0.6, 1.7, 400)
    matrices = [rotations[0] @ np.diag(shape * c) @ rotations[1].T for c in scales]
    targets = _run(_targets, matrices, wp.mat33)
    np.testing.assert_allclose(np.linalg.det(targets), 1.0, atol=2e-4)
    steps = np.linalg.norm(np.diff(targets, axis=0), axis=(1, 2))
    input_steps = np.linalg.norm(np.diff(np.array(matrices), axis=0), axis=(1, 2))
    assert steps.max() < 3.0 * input_steps.max(), steps.max()
