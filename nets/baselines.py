"""The paper's baselines (Park et al. 2024 §5.2, Appendix A.2), numpy and scipy only: each
maps one frame's LR node positions (N, 3) cm to skin positions (M, 3) float32 cm.

Each is a class built once from a ``nets.pairs.PairRest`` (everything that depends on the
rest shapes is precomputed there), then called per frame: ``baseline(lr) -> skin``.

- ``Embedded``: the skin's barycentric weights in its LR element (the "embedded
  surface"). Reproduces any affine motion of the LR nodes exactly.
- ``GaussianRBF``: the LR node displacements interpolated to the skin by Gaussian radial
  basis functions φ(r) = exp(−r²/σ²) centred at the LR nodes plus an affine polynomial
  (A.2.1 without it; the affine term makes rigid and affine motions exact and is standard,
  Anjyo et al. 2014), with a ridge λ on Φ's diagonal. Distances are Euclidean (the paper
  measures them geodesically; Euclidean keeps Φ positive definite). σ defaults to the LR
  spacing (median LR edge length); kernel values below 1e-6 (r > 3.7σ) are dropped, so
  the skin-side kernel matrix is sparse. The (N+4)² saddle system is inverted once and
  the inverse's first N columns kept: per frame one (N+4, N) matmul and one sparse matmul.
- ``MovingLeastSquares``: each skin vertex fits an affine field d(x) ≈ c₀ + C(x − x_j)
  to the displacements of its K geodesic LR neighbours (``skin_lr_neighbours``, K = 20 as
  A.2.2) weighted by exp(−R²/σ²), R the geodesic distance (``skin_lr_distances``), and
  takes c₀ (A.2.2 uses a per-component polynomial of degree 2 in one coordinate; the
  affine fit in all three is the usual MLS and reproduces affine motions exactly). σ
  defaults to the median over skin vertices of the distance to the K-th neighbour. The
  fit's value is linear in the displacements, so the rest precomputes one (M, K) weight
  table: per frame one gather and one weighted sum.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import inv
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from .pairs import PairRest

_DROP = 1e-6  # kernel values below this are left out of the sparse skin-side matrix


def _check_frame(lr: np.ndarray, count: int) -> np.ndarray:
    lr = np.asarray(lr)
    if lr.shape != (count, 3):
        raise ValueError(f"Expected LR positions of shape ({count}, 3), got {lr.shape}.")
    return lr


def lr_spacing(rest: PairRest) -> float:
    """Median edge length (cm) of the rest LR tet mesh."""
    from ..sim.tetmesh import unique_edges

    edges = unique_edges(rest.lr_tets)
    return float(
        np.median(np.linalg.norm(rest.lr_rest[edges[:, 0]] - rest.lr_rest[edges[:, 1]], axis=1))
    )


class Embedded:
    """Barycentric embedding of the skin in the LR tets (``skin_elements``/``_weights``)."""

    name = "embedded"

    def __init__(self, rest: PairRest):
        self.count = rest.lr_count
        self.corners = rest.lr_tets[rest.skin_elements]  # (M, 4)
        self.weights = rest.skin_weights.astype(np.float32)  # (M, 4)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = _check_frame(lr, self.count).astype(np.float32, copy=False)
        return np.einsum("mk,mkd->md", self.weights, lr[self.corners]).astype(np.float32)


class GaussianRBF:
    """Gaussian RBF interpolation of LR displacements, with an affine term (module
    docstring). ``sigma`` cm (default: the LR spacing), ``ridge`` λ added to Φ's
    diagonal (0 interpolates exactly; the default smooths negligibly and keeps the solve
    well-posed on fine lattices)."""

    name = "gaussian_rbf"

    def __init__(self, rest: PairRest, sigma: float | None = None, ridge: float = 1e-6):
        self.sigma = float(sigma) if sigma else lr_spacing(rest)
        self.ridge = float(ridge)
        self.count = rest.lr_count
        self.lr_rest = rest.lr_rest.astype(np.float64)
        self.skin_rest = rest.skin_rest.astype(np.float32)
        n, cutoff = self.count, self.sigma * np.sqrt(-np.log(_DROP))
        centre = self.lr_rest.mean(axis=0)
        scale = float(np.abs(self.lr_rest - centre).max()) or 1.0
        self._centre, self._scale = centre, scale
        # Saddle system [[Φ + λI, P], [Pᵀ, 0]] with P = [1, (x − c)/s] (N, 4).
        system = np.zeros((n + 4, n + 4))
        system[:n, :n] = cdist(self.lr_rest, self.lr_rest, "sqeuclidean")
        np.exp(system[:n, :n] / -(self.sigma**2), out=system[:n, :n])
        system[np.arange(n), np.arange(n)] += self.ridge
        poly = np.hstack([np.ones((n, 1)), (self.lr_rest - centre) / scale])
        system[:n, n:], system[n:, :n] = poly, poly.T
        # coefficients [w; c] = solve · d: the inverse's first N columns (N+4, N), once.
        self.solve = inv(system, overwrite_a=True, check_finite=False)[:, :n].astype(np.float32)
        tree = cKDTree(self.lr_rest)
        pairs = tree.query_ball_point(rest.skin_rest.astype(np.float64), r=cutoff)
        rows = np.repeat(np.arange(len(pairs)), [len(p) for p in pairs])
        cols = np.concatenate([np.asarray(p, dtype=np.int64) for p in pairs]) if len(rows) else rows
        r2 = np.sum((rest.skin_rest[rows].astype(np.float64) - self.lr_rest[cols]) ** 2, axis=1)
        self.kernel = csr_matrix(
            (np.exp(-r2 / self.sigma**2).astype(np.float32), (rows, cols)),
            shape=(rest.skin_count, n),
        )
        self.poly = np.hstack(
            [np.ones((rest.skin_count, 1)), (rest.skin_rest - centre) / scale]
        ).astype(np.float32)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = _check_frame(lr, self.count)
        displacement = (lr.astype(np.float64) - self.lr_rest).astype(np.float32)
        coefficients = self.solve @ displacement  # (N+4, 3)
        n = self.count
        skin = self.kernel @ coefficients[:n] + self.poly @ coefficients[n:]
        return (self.skin_rest + skin).astype(np.float32)


class MovingLeastSquares:
    """Moving least squares over each skin vertex's geodesic LR neighbours, affine basis,
    Gaussian weights of the geodesic distance (module docstring). ``sigma`` cm."""

    name = "mls"

    def __init__(self, rest: PairRest, sigma: float | None = None):
        neighbours = rest.skin_lr_neighbours
        distances = rest.skin_lr_distances.astype(np.float64)
        self.sigma = float(sigma) if sigma else float(np.median(distances[:, -1]))
        self.count = rest.lr_count
        self.neighbours = neighbours
        self.lr_rest = rest.lr_rest.astype(np.float64)
        self.skin_rest = rest.skin_rest.astype(np.float32)
        weights = np.exp(-(distances**2) / self.sigma**2)  # (M, K)
        offsets = self.lr_rest[neighbours] - rest.skin_rest[:, None, :].astype(np.float64)
        scale = np.maximum(np.abs(offsets).max(axis=(1, 2)), 1e-9)[:, None, None]
        basis = np.concatenate([np.ones(weights.shape + (1,)), offsets / scale], axis=2)  # (M,K,4)
        root = np.sqrt(weights)[:, :, None]
        # c = pinv(√W B) √W d; the value at the vertex is c₀: row 0 of pinv(√W B) · √W.
        table = np.linalg.pinv(root * basis, rcond=1e-10)[:, 0, :] * root[:, :, 0]
        self.table = table.astype(np.float32)  # (M, K), rows sum to 1

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = _check_frame(lr, self.count)
        displacement = (lr.astype(np.float64) - self.lr_rest).astype(np.float32)
        moved = np.einsum("mk,mkd->md", self.table, displacement[self.neighbours])
        return (self.skin_rest + moved).astype(np.float32)


BASELINES = {"embedded": Embedded, "gaussian_rbf": GaussianRBF, "mls": MovingLeastSquares}


def embedded(rest: PairRest) -> Embedded:
    """The embedded-surface baseline of ``rest``."""
    return Embedded(rest)


def gaussian_rbf(rest: PairRest, sigma: float | None = None, ridge: float = 1e-6) -> GaussianRBF:
    """The Gaussian RBF baseline of ``rest``."""
    return GaussianRBF(rest, sigma, ridge)


def moving_least_squares(rest: PairRest, sigma: float | None = None) -> MovingLeastSquares:
    """The MLS baseline of ``rest``."""
    return MovingLeastSquares(rest, sigma)


__all__ = [
    "BASELINES",
    "Embedded",
    "GaussianRBF",
    "MovingLeastSquares",
    "embedded",
    "gaussian_rbf",
    "lr_spacing",
    "moving_least_squares",
]
