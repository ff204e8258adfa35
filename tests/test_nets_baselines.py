"""The paper's baselines (nets.baselines) on a small synthetic pair rest: an LR tet grid
and a finer closed box surface inside it. Each reproduces rigid and affine motions of the
LR mesh on the skin; on smooth motions they stay close; shapes and dtypes are right."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from synthetic import tet_grid

from physface.nets.baselines import (
    BASELINES,
    Embedded,
    GaussianRBF,
    MovingLeastSquares,
    gaussian_rbf,
    lr_spacing,
    moving_least_squares,
)
from physface.nets.pairs import PairRest
from physface.nets.prepare import skin_surface_neighbours
from physface.sim.neighbours import lr_geodesic_knn
from physface.sim.tetmesh import boundary_faces, embed_points


@pytest.fixture(scope="module")
def rest():
    from types import SimpleNamespace

    lr_rest, lr_tets = tet_grid((6, 5, 4), (5.0, 4.0, 3.0))
    fine, fine_tets = tet_grid((11, 9, 7), (4.0, 3.2, 2.4))
    used, triangles = np.unique(boundary_faces(fine_tets), return_inverse=True)
    skin = (fine[used] + np.array([0.5, 0.4, 0.3])).astype(np.float32)
    triangles = triangles.reshape(-1, 3)
    elements, weights = embed_points(skin, lr_rest, lr_tets)
    knn, _ = lr_geodesic_knn(SimpleNamespace(rest_positions=lr_rest, tets=lr_tets), k=5)
    neighbours, distances = skin_surface_neighbours(skin, triangles, lr_rest, 20)
    return PairRest(
        lr_rest=lr_rest,
        lr_tets=lr_tets,
        skin_rest=skin,
        skin_triangles=triangles,
        skin_lr_neighbours=neighbours,
        skin_lr_distances=distances,
        lr_knn=knn,
        skin_elements=elements,
        skin_weights=weights,
    )


@pytest.fixture(scope="module")
def baselines(rest):
    return {name: cls(rest) for name, cls in BASELINES.items()}


def moved(points, rotation, translation, linear=None):
    matrix = rotation.as_matrix() if linear is None else linear
    return (points.astype(np.float64) @ matrix.T + translation).astype(np.float32)


@pytest.mark.parametrize("name", list(BASELINES))
def test_rest_maps_to_rest(rest, baselines, name):
    skin = baselines[name](rest.lr_rest)
    assert skin.shape == (rest.skin_count, 3) and skin.dtype == np.float32
    np.testing.assert_allclose(skin, rest.skin_rest, atol=1e-5)


@pytest.mark.parametrize("name", list(BASELINES))
def test_rigid_motion_is_reproduced(rest, baselines, name):
    rotation = Rotation.from_rotvec([0.3, -0.5, 0.2])
    translation = np.array([1.5, -2.0, 0.7])
    skin = baselines[name](moved(rest.lr_rest, rotation, translation))
    np.testing.assert_allclose(skin, moved(rest.skin_rest, rotation, translation), atol=2e-4)


@pytest.mark.parametrize("name", list(BASELINES))
def test_affine_motion_is_reproduced(rest, baselines, name):
    linear = np.array([[1.2, 0.1, -0.05], [0.0, 0.9, 0.2], [0.1, -0.1, 1.1]])
    translation = np.array([0.2, 0.3, -0.4])
    skin = baselines[name](moved(rest.lr_rest, None, translation, linear))
    np.testing.assert_allclose(skin, moved(rest.skin_rest, None, translation, linear), atol=2e-4)


def test_smooth_motion_stays_close(rest, baselines):
    """A bend that no affine field gives: every baseline within a fraction of its size."""

    def bend(points):
        p = points.astype(np.float64)
        out = p.copy()
        out[:, 2] += 0.3 * np.sin(0.6 * p[:, 0])
        out[:, 1] += 0.1 * p[:, 0] * p[:, 2]
        return out.astype(np.float32)

    truth = bend(rest.skin_rest)
    size = np.linalg.norm(truth - rest.skin_rest, axis=1).mean()
    for name, baseline in baselines.items():
        error = np.linalg.norm(baseline(bend(rest.lr_rest)) - truth, axis=1).mean()
        assert error < 0.15 * size, (name, error, size)


def test_parameters_and_refusals(rest):
    assert lr_spacing(rest) == pytest.approx(np.sqrt(2.0))  # the Kuhn grid: face diagonals
    wide = gaussian_rbf(rest, sigma=2.0, ridge=0.0)
    assert wide.sigma == 2.0 and wide.solve.shape == (rest.lr_count + 4, rest.lr_count)
    mls = moving_least_squares(rest, sigma=1.5)
    np.testing.assert_allclose(mls.table.sum(axis=1), 1.0, atol=1e-4)  # reproduces constants
    for baseline in (Embedded(rest), GaussianRBF(rest), MovingLeastSquares(rest)):
        with pytest.raises(ValueError, match="Expected LR positions"):
            baseline(rest.lr_rest[:-1])


def test_face_like_rest_shapes(tmp_path):
    """The face dataset reader's rest (skin rows = embedded vertices) feeds every baseline."""
    from physface.nets.pairs import load_pairs
    from physface.sim.dataset_format import FORMAT, write_json, write_npz

    lr_rest, lr_tets = tet_grid((5, 4, 3), (4.4, 3.3, 2.2))
    fine, fine_tets = tet_grid((9, 7, 5), (3.6, 2.7, 1.8))
    used, triangles = np.unique(boundary_faces(fine_tets), return_inverse=True)
    skin = (fine[used] + 0.3).astype(np.float32)
    neutral = np.concatenate([np.zeros((2, 3), np.float32), skin])
    embedded = np.arange(2, len(neutral), dtype=np.int32)
    write_npz(
        tmp_path / "rest.npz",
        {"neutral": neutral, "embedded_vertices": embedded,
         "triangles": (triangles.reshape(-1, 3) + 2).astype(np.int32),
         "lr_rest": lr_rest, "lr_tets": lr_tets.astype(np.int32)},
    )  # fmt: skip
    elements, weights = embed_points(skin, lr_rest, lr_tets)
    volume = np.stack([lr_rest, lr_rest * 1.01])
    lr_skin = np.repeat(neutral[None], 2, axis=0)
    lr_skin[:, embedded] = np.einsum("mk,fmkd->fmd", weights, volume[:, lr_tets[elements]])
    write_npz(tmp_path / "anger" / "lr.npz", {"skin": lr_skin, "volume": volume})
    write_npz(
        tmp_path / "anger" / "hr.npz",
        {"skin": lr_skin, "converged": np.ones(2, bool), "residual": np.full(2, 1e-4, np.float32)},
    )
    write_npz(
        tmp_path / "anger" / "controls.npz", {"head_transform": np.tile(np.eye(4), (2, 1, 1))}
    )
    for resolution in ("lr", "hr"):
        write_json(
            tmp_path / "anger" / f"{resolution}.json",
            {"complete": True, "file": f"{resolution}.npz"},
        )
    write_json(
        tmp_path / "dataset.json",
        {
            "format": FORMAT,
            "rig_key": "none",
            "sequences": [{"name": "anger", "kind": "theme", "theme": "anger"}],
        },
    )
    pairs = load_pairs(tmp_path)
    sequence = pairs.sequences["anger"]
    assert sequence.split == "test"
    for name, cls in BASELINES.items():
        out = cls(pairs.rest)(sequence.lr[1])
        assert out.shape == (len(skin), 3) and out.dtype == np.float32, name
        np.testing.assert_allclose(out, sequence.skin[1], atol=2e-4)  # a uniform scale: affine
