"""The canonical material space on the tiny rig: surfaces, meshes, muscles, jaw, embedding."""

import numpy as np
import pytest

from physface.sim.anatomy import JawPose, apply_transform, build_anatomy
from physface.sim.face_model import load_face_model
from physface.sim.lattice import skin_lip_sides
from physface.sim.neighbours import triangle_edges
from physface.sim.rig import load_rig
from physface.sim.simmesh import JAW, LIP_LOWER, LIP_NONE, LIP_UPPER, SKULL
from physface.sim.tetmesh import interpolate
from physface.sim.tissue import build_tissue_surface


@pytest.fixture(scope="module")
def model():
    return load_face_model()


@pytest.fixture(scope="module")
def rig():
    return load_rig("tiny")


def test_tissue_surface_is_closed_and_outward(model):
    surface = build_tissue_surface(model)
    assert len(surface.boundary_edges()) == 0
    assert surface.is_consistently_oriented()
    # A head-and-neck of the ICT model holds a few litres; outward means positive.
    assert 3000 < surface.volume() < 8000
    # Outward normals: the nose tip's normal points forward (+z).
    nose = np.flatnonzero(surface.ict_vertices == model.landmarks[30])[0]
    assert surface.vertex_normals()[nose, 2] > 0.8


@pytest.mark.parametrize("mesh_name", ["lr", "hr"])
def test_no_element_has_non_positive_volume(rig, mesh_name):
    mesh = getattr(rig, mesh_name)
    volumes = mesh.volumes()
    print(
        f"{mesh_name}: {mesh.element_count} elements, min dihedral {mesh.min_dihedral_deg():.1f}°"
    )
    assert volumes.min() > 0


def test_lattice_is_well_conditioned(rig):
    assert rig.lr.min_dihedral_deg() > 30.0


def test_every_muscle_has_elements_and_unit_fibres(rig):
    for mesh, muscles in ((rig.lr, rig.lr_muscles), (rig.hr, rig.hr_muscles)):
        counts = np.bincount(muscles.muscle, minlength=len(rig.muscle_names))
        lid_muscles = {rig.muscle_names[m] for m in rig.lids.lid_muscles}  # the lid layer's
        empty = [n for n, c in zip(rig.muscle_names, counts, strict=True) if c == 0]
        assert sorted(empty) == sorted(lid_muscles), f"muscles without elements: {empty}"
        np.testing.assert_allclose(np.linalg.norm(muscles.fibre, axis=1), 1.0, atol=1e-4)
        assert muscles.weight.min() > 0 and muscles.weight.max() <= 1.0 + 1e-6
        assert muscles.element.max() < mesh.element_count


def test_linear_muscle_fibres_point_from_origin_to_insertion(rig, model):
    from physface.sim.muscles import load_muscle_definitions

    definitions = load_muscle_definitions(face_model=model)
    for m, definition in enumerate(definitions):
        if definition.kind != "linear":
            continue
        axis = model.neutral[definition.anchors[-1]] - model.neutral[definition.anchors[0]]
        chosen = rig.lr_muscles.muscle == m
        weighted = (rig.lr_muscles.fibre[chosen] * rig.lr_muscles.weight[chosen, None]).sum(0)
        assert weighted @ axis > 0, definition.name


@pytest.mark.parametrize("mesh_name", ["lr", "hr"])
def test_embedding_reproduces_the_rest_skin(rig, model, mesh_name):
    mesh, skin = getattr(rig, mesh_name), getattr(rig, f"{mesh_name}_skin")
    positions = interpolate(mesh.rest_positions, mesh.tets, skin.elements, skin.weights)
    np.testing.assert_allclose(positions, model.neutral[skin.vertices], atol=1e-4)


def test_lips_do_not_share_elements_or_nodes(rig, model):
    lr = rig.lr
    upper = np.unique(lr.tets[lr.lip_side == LIP_UPPER])
    lower = np.unique(lr.tets[lr.lip_side == LIP_LOWER])
    assert len(upper) and len(lower)
    assert not len(np.intersect1d(upper, lower))
    # Every skin vertex embeds in an element of its own side (upper lip, lower lip, neither).
    for mesh_name in ("lr", "hr"):
        mesh, skin = getattr(rig, mesh_name), getattr(rig, f"{mesh_name}_skin")
        side = skin_lip_sides(model, skin.vertices)
        np.testing.assert_array_equal(mesh.lip_side[skin.elements], side)


def test_skin_lip_sides_follow_the_mouth_opening(model):
    """The lips are cut where the skin is open: no face or mouth-socket edge joins an
    upper-lip to a lower-lip vertex except in the last few mm before a mouth corner (the
    lip line alone split 120 edges up to 1 cm in from the corners)."""
    skin = np.concatenate([model.region("face"), model.region("mouth_socket")])
    side = skin_lip_sides(model, skin)
    lookup = np.zeros(model.vertex_count, dtype=np.int8)
    lookup[skin] = side
    edges = triangle_edges(model.triangles(skin))
    pair = np.sort(lookup[edges], axis=1)
    across = edges[(pair[:, 0] == LIP_UPPER) & (pair[:, 1] == LIP_LOWER)]
    corner_x = np.abs(model.neutral[model.landmarks[[60, 64]], 0]).max()
    assert (np.abs(model.neutral[across, 0]) > corner_x - 0.15).all()
    assert len(across) < 40
    # Philtrum and upper red lip above, lower red lip and chin fold below, cheek neither.
    points = {
        "philtrum": (0, -2.5, 11.8),
        "lower_red": (0, -4.1, 11.6),
        "chin_fold": (-1.5, -5.3, 10.6),
        "cheek": (5, -2, 9),
    }
    at = {
        name: np.argmin(np.linalg.norm(model.neutral[skin] - p, axis=1))
        for name, p in points.items()
    }
    assert side[at["philtrum"]] == LIP_UPPER
    assert side[at["lower_red"]] == side[at["chin_fold"]] == LIP_LOWER
    assert side[at["cheek"]] == LIP_NONE


def test_bones_are_labelled(rig):
    for mesh in (rig.lr, rig.hr):
        assert (mesh.node_labels == SKULL).sum() > 0
        assert (mesh.node_labels == JAW).sum() > 0
    # The jaw's nodes lie below the skull's on average.
    lr = rig.lr
    jaw_y = lr.rest_positions[lr.node_labels == JAW, 1].mean()
    skull_y = lr.rest_positions[lr.node_labels == SKULL, 1].mean()
    assert jaw_y < skull_y


def test_jaw_transform_identity_at_rest_and_opens_down(model):
    anatomy = build_anatomy(model)
    np.testing.assert_allclose(anatomy.jaw_transform(JawPose()), np.eye(4), atol=1e-12)
    chin = model.neutral[model.landmarks[8]][None]
    opened = apply_transform(anatomy.jaw_transform(JawPose(opening_deg=20.0)), chin)[0]
    assert opened[1] < chin[0, 1] - 1.0  # more than 1 cm down at 20°
    lateral = apply_transform(anatomy.jaw_transform(JawPose(lateral_mm=5.0)), chin)[0]
    np.testing.assert_allclose(lateral - chin[0], [0.5, 0, 0], atol=1e-6)
    rotation = anatomy.jaw_transform(JawPose(opening_deg=15.0))[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_rigid_parts_follow_skull_and_jaw(rig, model):
    lower_teeth = model.region("lower_teeth")
    upper_teeth = model.region("upper_teeth")
    assert np.isin(lower_teeth, rig.jaw_vertices).all()
    assert np.isin(upper_teeth, rig.skull_vertices).all()
    assert np.isin(model.region("eyeball_left"), rig.skull_vertices).all()


def test_neighbour_tables(rig, model):
    n, p = rig.lr.vertex_count, len(rig.hr_skin.vertices)
    assert rig.lr_knn.shape == (n, 5)
    assert rig.hr_skin_lr_neighbours.shape == rig.hr_skin_lr_distances.shape == (p, 20)
    assert (rig.hr_skin_lr_neighbours >= 0).all() and (rig.hr_skin_lr_neighbours < n).all()
    assert (np.diff(rig.hr_skin_lr_distances, axis=1) >= 0).all()
    # A row's distance (along the HR surface plus the LR vertex's depth) bounds the straight
    # distance, and the first LR neighbour lies within about a lattice cell; fTetWild's
    # output varies from run to run, so the bounds hold for any of its meshes (measured on
    # three: first distance p99 2.6 cm, max 3.3; first straight distance max 2.5).
    skin = model.neutral[rig.hr_skin.vertices]
    lr = rig.lr.rest_positions
    euclid = np.linalg.norm(lr[rig.hr_skin_lr_neighbours] - skin[:, None], axis=2)
    assert (rig.hr_skin_lr_distances >= euclid - 1e-4).all()
    cell = 2.4
    assert np.percentile(rig.hr_skin_lr_distances[:, 0], 99) < 1.5 * cell
    assert rig.hr_skin_lr_distances[:, 0].max() < 2 * cell
    assert euclid[:, 0].max() < 1.5 * cell
    # The geodesically nearest LR neighbour is geometrically close.
    first = rig.lr.rest_positions[rig.lr_knn[:, 0]] - rig.lr.rest_positions
    assert np.linalg.norm(first, axis=1).max() < 2.4 * 1.01
