"""Sparse factorisation of the simulator's global matrix, and the BLAS thread guard.

The global matrix of projective dynamics is symmetric positive definite and fixed per
simulator (DESIGN.md, "Solver"): it is factored once (CHOLMOD through cholespy where it
is installed, else SuperLU in symmetric mode) and each iteration is a pair of triangular
solves. ``FactorCache`` keeps the factors of the base matrix plus a few spring sets.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

BACKENDS = ("auto", "splu", "cholespy")
FACTOR_CACHE_SIZE = 4


class Factor:
    """A sparse symmetric positive definite matrix (n, n) factored once: SuperLU
    (scipy, symmetric mode) or CHOLMOD through cholespy where it is installed."""

    def __init__(self, matrix: sp.spmatrix, backend: str):
        self.backend = backend
        if backend == "cholespy":
            from cholespy import CholeskySolverD, MatrixType

            coo = sp.coo_matrix(matrix)
            self._solver = CholeskySolverD(
                matrix.shape[0], coo.row.astype(np.int32), coo.col.astype(np.int32),
                coo.data.astype(np.float64), MatrixType.COO,
            )  # fmt: skip
            self._out = np.zeros((matrix.shape[0], 3))
        else:
            from scipy.sparse.linalg import splu

            self._solver = splu(
                sp.csc_matrix(matrix), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )  # fmt: skip

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """(n, 3) → (n, 3); the result may be an internal buffer: copy to keep it."""
        if self.backend == "cholespy":
            self._solver.solve(np.ascontiguousarray(rhs), self._out)
            return self._out
        return self._solver.solve(rhs)

    def solve_many(self, rhs: np.ndarray) -> np.ndarray:
        """(n, k) → (n, k) for any k."""
        if self.backend == "cholespy":
            out = np.zeros_like(rhs)
            self._solver.solve(np.ascontiguousarray(rhs), out)
            return out
        return self._solver.solve(np.asfortranarray(rhs))


@contextmanager
def single_threaded_blas():
    """Run numpy's OpenBLAS on one thread inside the block: the step's dense algebra is
    small (Anderson's least squares, the contact problem), and on a busy machine a second
    BLAS thread spinning for a core makes a 100 × 100 Cholesky hundreds of times slower.
    Restores the previous thread count; does nothing where no OpenBLAS is found."""
    library = _openblas()
    if library is None:
        yield
        return
    get, set_ = library
    previous = get()
    set_(1)
    try:
        yield
    finally:
        set_(previous)


@lru_cache(maxsize=1)
def _openblas():
    import ctypes
    import glob
    import os

    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libopenblas*"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):
            get = getattr(library, f"openblas_get_num_threads{suffix}", None)
            set_ = getattr(library, f"openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return get, set_
    return None


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {BACKENDS}")
    if backend != "auto":
        return backend
    try:
        import cholespy  # noqa: F401
    except ImportError:
        return "splu"
    return "cholespy"


class FactorCache:
    """Factors of ``base`` (n, n) plus a set of extra terms, keyed by the caller (the base
    alone under ``()``, always kept; at most FACTOR_CACHE_SIZE in all, least recent out).
    ``factorizations`` counts the factorisations made."""

    def __init__(self, base: sp.spmatrix, backend: str):
        self.base, self.backend = base.tocsc(), resolve_backend(backend)
        self.factorizations = 0
        self._factors: OrderedDict[tuple, Factor] = OrderedDict()
        self.get((), None)

    def __contains__(self, key: tuple) -> bool:
        return key in self._factors

    def get(self, key: tuple, extra: sp.spmatrix | None) -> Factor:
        """The factor of base + ``extra`` under ``key``, from the cache or new."""
        factor = self._factors.get(key)
        if factor is not None:
            self._factors.move_to_end(key)
            return factor
        factor = Factor(self.base if extra is None else self.base + extra, self.backend)
        self.factorizations += 1
        self._factors[key] = factor
        while len(self._factors) > FACTOR_CACHE_SIZE:
            self._factors.pop(next(k for k in self._factors if k != ()))
        return factor


__all__ = ["BACKENDS", "Factor", "FactorCache", "resolve_backend", "single_threaded_blas"]
