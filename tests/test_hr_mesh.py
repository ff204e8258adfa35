"""HR conforming mesh on the tiny preset: validity, quality, size, conformity, bones, lips."""

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from physface.sim.anatomy import build_anatomy
from physface.sim.face_model import load_face_model
from physface.sim.hr_mesh import build_hr_mesh, lip_contact_surfaces
from physface.sim.lattice import ClipRegion, LipZone, build_lattice
from physface.sim.simmesh import FREE, JAW, LIP_LOWER, LIP_UPPER, SKULL
from physface.sim.tetmesh import embed_points, interpolate
from physface.sim.tissue import build_tissue_surface

TINY_SPACING = 2.4


@pytest.fixture(scope="module")
def built():
    model = load_face_model()
    surface = build_tissue_surface(model)
    anatomy = build_anatomy(model)
    lr = build_lattice(model, surface, anatomy, spacing=TINY_SPACING)
    hr = build_hr_mesh(model, surface, anatomy, lr.element_count)  # fTetWild output cached
    return model, surface, anatomy, lr, hr


def test_elements_positive_and_quality_reported(built):
    *_, hr = built
    assert hr.rest_positions.dtype == np.float32 and hr.tets.dtype == np.int32
    assert hr.node_labels.dtype == np.int8 and hr.lip_side.dtype == np.int8
    assert hr.volumes().min() > 0
    min_dihedral = hr.min_dihedral_deg()
    print(f"HR tiny: {hr.vertex_count} vertices, {hr.element_count} elements, "
          f"min dihedral {min_dihedral:.2f}°")  # fmt: skip
    assert min_dihedral > 5.0


def test_element_count_is_20_to_30_times_lr(built):
    *_, lr, hr = built
    assert 20 <= hr.element_count / lr.element_count <= 30


def test_every_tissue_surface_vertex_in_the_clip_region_embeds(built):
    _, surface, _, _, hr = built
    skin = surface.positions[:-1]
    skin = skin[ClipRegion().contains(skin)]
    elements, weights = embed_points(skin, hr.rest_positions, hr.tets)
    rebuilt = interpolate(hr.rest_positions, hr.tets, elements, weights)
    assert np.abs(rebuilt - skin).max() < 1e-4
    # Conforming: the skin lies on the mesh boundary (within fTetWild's envelope), so the
    # weights barely extrapolate.
    assert weights.min() > -1.0  # no skin vertex lies an element height outside


def test_bone_nodes_are_prescribed_and_no_element_is_wholly_bone_away_from_skin(built):
    _, surface, _, _, hr = built
    assert (hr.node_labels == SKULL).any() and (hr.node_labels == JAW).any()
    wholly_bone = (hr.node_labels[hr.tets] != FREE).all(axis=1)
    assert wholly_bone.mean() < 0.05  # only elements kept for holding skin vertices


def test_every_part_of_the_mesh_is_held_by_bone(built):
    *_, hr = built
    rows = np.repeat(np.arange(hr.element_count), 4)
    incidence = coo_matrix(
        (np.ones(len(rows)), (rows, hr.tets.ravel())), shape=(hr.element_count, hr.vertex_count)
    ).tocsr()
    count, component = connected_components(incidence.T @ incidence, directed=False)
    held = np.zeros(count, dtype=bool)
    held[component[hr.node_labels != FREE]] = True
    assert held.all(), f"{(~held).sum()} of {count} mesh parts have no prescribed node"


def test_lips_are_separated_and_contact_surfaces_face_each_other(built):
    model, *_, hr = built
    upper_nodes = np.unique(hr.tets[hr.lip_side == LIP_UPPER])
    lower_nodes = np.unique(hr.tets[hr.lip_side == LIP_LOWER])
    assert len(upper_nodes) and len(lower_nodes)
    assert not len(np.intersect1d(upper_nodes, lower_nodes))
    upper, lower = lip_contact_surfaces(hr, LipZone.from_model(model))
    assert len(upper) and len(lower)
    assert np.isin(upper, upper_nodes).all() and np.isin(lower, lower_nodes).all()
    p = hr.rest_positions
    assert p[upper].mean(axis=(0, 1))[1] > p[lower].mean(axis=(0, 1))[1]


def test_same_inputs_give_the_same_mesh(built):
    model, surface, anatomy, lr, hr = built
    again = build_hr_mesh(model, surface, anatomy, lr.element_count)
    assert np.array_equal(again.rest_positions, hr.rest_positions)
    assert np.array_equal(again.tets, hr.tets)
    assert np.array_equal(again.node_labels, hr.node_labels)


def test_parts_without_bone_are_found():
    from physface.sim.hr_mesh import _loose_elements

    tets = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.int32)
    labels = np.zeros(9, dtype=np.int8)
    labels[0] = SKULL
    assert _loose_elements(tets, labels).tolist() == [False, False, True]
