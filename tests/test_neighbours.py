"""Neighbour tables of the super-resolution network on the tiny preset, checked against
brute-force Dijkstra and a dense linear assignment."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import dijkstra

from physface.sim.anatomy import build_anatomy
from physface.sim.face_model import load_face_model
from physface.sim.lattice import ClipRegion, build_lattice
from physface.sim.neighbours import (
    assign_lr_to_surface,
    edge_graph,
    lr_geodesic_knn,
    surface_lr_neighbours,
    triangle_edges,
)
from physface.sim.tetmesh import unique_edges
from physface.sim.tissue import build_tissue_surface

TINY_SPACING = 2.4


@pytest.fixture(scope="module")
def tiny():
    model = load_face_model()
    surface = build_tissue_surface(model)
    lr = build_lattice(model, surface, build_anatomy(model), spacing=TINY_SPACING)
    skin = surface.positions[:-1]  # the neck-cap centre is not skin
    triangles = surface.triangles[(surface.triangles < len(skin)).all(axis=1)]
    return lr, skin, triangles


@pytest.fixture(scope="module")
def lr_knn(tiny):
    lr, *_ = tiny
    return lr_geodesic_knn(lr, k=5)


@pytest.fixture(scope="module")
def skin_table(tiny):
    lr, skin, triangles = tiny
    return surface_lr_neighbours(skin, triangles, lr.rest_positions, k=20)


def _check_rows(indices, distances, count, k):
    assert indices.shape == distances.shape == (count, k)
    assert indices.dtype == np.int32 and distances.dtype == np.float32
    assert np.isfinite(distances).all() and (indices >= 0).all()
    assert (np.diff(distances, axis=1) >= 0).all()


def test_lr_knn_is_geodesic_and_local(tiny, lr_knn):
    lr, *_ = tiny
    indices, distances = lr_knn
    n = lr.vertex_count
    _check_rows(indices, distances, n, 5)
    assert (indices != np.arange(n)[:, None]).all()
    assert all(len(set(row)) == 5 for row in indices.tolist())
    p = lr.rest_positions
    euclid = np.linalg.norm(p[indices] - p[:, None], axis=2)
    assert (distances >= euclid - 1e-5).all()
    assert (euclid[:, 0] <= 2 * TINY_SPACING).all()


def test_lr_knn_matches_brute_force(tiny, lr_knn):
    lr, *_ = tiny
    indices, distances = lr_knn
    full = dijkstra(edge_graph(lr.rest_positions, unique_edges(lr.tets)))
    np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :5]
    np.testing.assert_allclose(distances, expected, rtol=1e-6, atol=1e-6)
    rows = np.arange(len(full))[:, None]
    np.testing.assert_allclose(full[rows, indices], distances, rtol=1e-6, atol=1e-6)


def test_assignment_is_one_to_one_and_optimal():
    rng = np.random.default_rng(7)
    skin = rng.normal(size=(300, 3)).astype(np.float32)
    lr = (0.6 * rng.normal(size=(120, 3))).astype(np.float32)  # many deep points compete
    mapping = assign_lr_to_surface(skin, lr, candidates=4)
    assert mapping.dtype == np.int32 and len(np.unique(mapping)) == len(lr)
    cost = np.linalg.norm(lr[:, None].astype(np.float64) - skin[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    assert cost[np.arange(len(lr)), mapping].sum() == pytest.approx(cost[rows, cols].sum())


def test_assignment_refuses_more_lr_than_surface_vertices():
    with pytest.raises(ValueError, match="more vertices than the surface"):
        assign_lr_to_surface(np.zeros((3, 3)), np.zeros((4, 3)))


def test_skin_table_is_geodesic_and_local(tiny, skin_table):
    lr, skin, triangles = tiny
    indices, distances = skin_table
    _check_rows(indices, distances, len(skin), 20)
    assert all(len(set(row)) == 20 for row in indices[::97].tolist())
    mapping = assign_lr_to_surface(skin, lr.rest_positions)
    assert len(np.unique(mapping)) == lr.vertex_count
    # Surface distance plus depth bounds the straight distance to the LR vertex.
    euclid = np.linalg.norm(lr.rest_positions[indices] - skin[:, None], axis=2)
    assert (distances >= euclid - 1e-5).all()
    in_clip = ClipRegion().contains(skin)
    # Deep pockets of the surface (the eye sockets' linings) are reached around the lids,
    # so a few vertices sit farther from their first neighbour than the open skin does.
    assert np.percentile(euclid[in_clip, 0], 99) <= 2 * TINY_SPACING
    assert euclid[in_clip, 0].max() <= 3 * TINY_SPACING


def test_skin_table_matches_brute_force(tiny, skin_table):
    lr, skin, triangles = tiny
    indices, distances = skin_table
    mapping = assign_lr_to_surface(skin, lr.rest_positions)
    full = dijkstra(edge_graph(skin, triangle_edges(triangles)), indices=mapping).T  # (M, N)
    full += np.linalg.norm(skin[mapping] - lr.rest_positions, axis=1)  # each LR vertex's depth
    expected = np.sort(full, axis=1)[:, :20]
    np.testing.assert_allclose(distances, expected, rtol=1e-5, atol=1e-5)
    rows = np.arange(len(skin))[:, None]
    np.testing.assert_allclose(full[rows, indices], distances, rtol=1e-5, atol=1e-5)
