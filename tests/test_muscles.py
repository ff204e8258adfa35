"""The muscle layer: the data file, centrelines, weights and fibre directions."""

import numpy as np
import pytest

from physface.sim import muscles
from physface.sim.errors import DataError
from physface.sim.face_model import load_face_model
from physface.sim.muscles import (
    load_muscle_definitions,
    mirror_vertex_map,
    muscle_fields,
    muscle_paths,
    skin_vertex_normals,
)

MIRROR = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
# The expression muscles the material space must have (pairs as _L and _R).
REQUIRED_PAIRS = (
    "frontalis_medial",
    "frontalis_lateral",
    "corrugator",
    "orbicularis_oculi",
    "levator_labii_superioris_alaeque_nasi",
    "levator_labii_superioris",
    "zygomaticus_major",
    "zygomaticus_minor",
    "risorius",
    "buccinator",
    "depressor_anguli_oris",
    "depressor_labii_inferioris",
    "mentalis",
    "platysma",
)
REQUIRED_MIDLINE = ("orbicularis_oris",)


@pytest.fixture(scope="module")
def model():
    return load_face_model()


@pytest.fixture(scope="module")
def all_definitions(model):
    return load_muscle_definitions(face_model=model)


@pytest.fixture(scope="module")
def definitions(all_definitions):
    """The volume muscles (lid muscles act in the eyelid layer: tests/test_eyelids.py)."""
    return [d for d in all_definitions if d.kind != "lid"]


@pytest.fixture(scope="module")
def paths(definitions, model):
    return muscle_paths(definitions, model)


@pytest.fixture(scope="module")
def own_fields(definitions, model, paths):
    """Fields of every muscle at its own centreline points: [(weights, directions)]."""
    return [
        tuple(f[0] for f in muscle_fields([d], model, p))
        for d, p in zip(definitions, paths, strict=True)
    ]


def test_at_least_twenty_muscles_with_the_expression_set(all_definitions):
    definitions = all_definitions
    names = {d.name for d in definitions}
    assert len(names) == len(definitions) >= 20
    for stem in REQUIRED_PAIRS:
        assert {f"{stem}_L", f"{stem}_R"} <= names, stem
    for name in REQUIRED_MIDLINE:
        assert name in names
    for d in definitions:
        assert d.group in muscles.GROUPS and d.action_units and d.description
        most = 1.0 if d.kind == "lid" else 1.0 - 1e-6  # a lid muscle may close the lid fully
        assert 0 < d.max_contraction <= most and d.thickness > 0 and d.width > 0
    lid = {d.name: d for d in definitions if d.kind == "lid"}
    assert set(lid) == {"orbicularis_oculi_palpebral_L", "orbicularis_oculi_palpebral_R",
                        "levator_palpebrae_L", "levator_palpebrae_R"}  # fmt: skip
    assert lid["levator_palpebrae_L"].action == "raise" and lid["levator_palpebrae_L"].lids == (
        "upper",
    )


def test_right_muscles_mirror_the_left_anchors(definitions, model):
    by_name = {d.name: d for d in definitions}
    for d in definitions:
        if d.side == "L":
            twin = by_name[d.name[:-2] + "_R"]
            left = model.neutral[list(d.anchors)]
            right = model.neutral[list(twin.anchors)]
            np.testing.assert_allclose(right * MIRROR, left, atol=1e-3)
            assert twin.depths == d.depths and twin.kind == d.kind


def test_mirror_vertex_map_maps_x_to_minus_x(model):
    vertex_map = mirror_vertex_map(model)
    skin = np.concatenate([model.region("face"), model.region("head_neck")])
    mirrored = model.neutral[vertex_map[skin]] * MIRROR
    assert np.abs(mirrored - model.neutral[skin]).max() < 0.01  # 0.1 mm
    assert np.array_equal(vertex_map[vertex_map[skin]], skin)


def test_paths_start_at_the_deep_anchors_and_rings_close(definitions, model, paths):
    normals = skin_vertex_normals(model)
    for d, path in zip(definitions, paths, strict=True):
        assert path.dtype == np.float32 and path.ndim == 2 and len(path) > 5
        first = model.neutral[d.anchors[0]] - d.depths[0] * normals[d.anchors[0]]
        np.testing.assert_allclose(path[0], first, atol=1e-4)
        if d.kind == "ring":
            np.testing.assert_array_equal(path[0], path[-1])
        else:
            last = model.neutral[d.anchors[-1]] - d.depths[-1] * normals[d.anchors[-1]]
            np.testing.assert_allclose(path[-1], last, atol=1e-4)
        step = np.linalg.norm(np.diff(path, axis=0), axis=1)
        assert step.max() < 2 * muscles.SAMPLE_SPACING_CM


def test_muscles_lie_under_the_skin(definitions, model, paths):
    from scipy.spatial import cKDTree

    skin = np.concatenate([model.region("face"), model.region("head_neck")])
    normals = skin_vertex_normals(model)
    tree = cKDTree(model.neutral[skin])
    for d, path in zip(definitions, paths, strict=True):
        _, nearest = tree.query(path)
        vertex = skin[nearest]
        height = np.einsum("ij,ij->i", path - model.neutral[vertex], normals[vertex])
        assert height.max() < 0, d.name


def test_centreline_points_have_weight_one(definitions, own_fields):
    for d, (weights, directions) in zip(definitions, own_fields, strict=True):
        assert weights.dtype == np.float32 and directions.dtype == np.float32
        assert weights.min() > 1 - 1e-6, d.name


def test_weights_in_unit_range_and_fibres_unit_everywhere(definitions, model):
    rng = np.random.default_rng(1)
    low, high = np.array([-9.0, -16.0, -4.0]), np.array([9.0, 13.0, 14.0])
    points = (low + rng.random((20000, 3)) * (high - low)).astype(np.float32)
    points[:5] = [[0, 0, 100], [0, 100, 0], [50, 0, 0], [0, -3.3, 10.5], [3, 3.4, 9]]
    weights, directions = muscle_fields(definitions, model, points)
    assert weights.shape == (len(definitions), len(points))
    assert directions.shape == (len(definitions), len(points), 3)
    assert weights.min() >= 0 and weights.max() <= 1
    assert weights.max(axis=1).min() > 0  # every muscle covers some of the box
    assert (weights == 0).any(axis=1).all()  # and falls off to zero
    np.testing.assert_allclose(np.linalg.norm(directions, axis=-1), 1.0, atol=1e-5)


def test_weight_falls_off_away_from_the_centreline(definitions, model, paths):
    from scipy.spatial import cKDTree

    skin = np.concatenate([model.region("face"), model.region("head_neck")])
    normals = skin_vertex_normals(model)
    tree = cKDTree(model.neutral[skin])
    for d, path in zip(definitions, paths, strict=True):
        middle = path[len(path) // 2]
        outward = normals[skin[tree.query(middle)[1]]]  # across the section's thickness
        steps = np.array([0.0, 0.5, 1.0, 2.0])[:, None] * d.thickness
        probe = (middle + steps * outward).astype(np.float32)
        weights, _ = muscle_fields([d], model, probe)
        assert weights[0, 0] == 1.0
        assert np.all(np.diff(weights[0]) <= 1e-6), d.name
        assert weights[0, -1] < 0.5, d.name


def test_linear_fibres_point_from_origin_to_insertion(definitions, paths, own_fields):
    for d, path, (_, directions) in zip(definitions, paths, own_fields, strict=True):
        if d.kind != "linear":
            continue
        middle = len(path) // 2
        assert directions[middle] @ (path[-1] - path[0]) > 0, d.name
        # Along the whole path the fibre follows the path's direction of travel.
        travel = np.gradient(path, axis=0)
        travel /= np.linalg.norm(travel, axis=1, keepdims=True)
        assert np.einsum("ij,ij->i", directions, travel).min() > 0.95, d.name


def test_ring_fibres_run_along_the_loop(definitions, paths, own_fields):
    rings = [i for i, d in enumerate(definitions) if d.kind == "ring"]
    assert rings
    for i in rings:
        path, (_, directions) = paths[i], own_fields[i]
        travel = np.roll(path[:-1], -1, axis=0) - np.roll(path[:-1], 1, axis=0)
        travel /= np.linalg.norm(travel, axis=1, keepdims=True)
        assert np.einsum("ij,ij->i", directions[:-1], travel).min() > 0.95


def test_left_and_right_fields_are_mirror_images(definitions, model, paths):
    rng = np.random.default_rng(2)
    index = {d.name: i for i, d in enumerate(definitions)}
    for d in definitions:
        if d.side == "R":
            continue
        twin = index[d.name[:-2] + "_R"] if d.side == "L" else index[d.name]
        path = paths[index[d.name]]
        spread = 0.6 * max(d.thickness, d.width)
        points = path[rng.integers(0, len(path), 3000)] + rng.normal(0, spread, (3000, 3))
        points = points.astype(np.float32)
        weights, directions = muscle_fields(
            [d, definitions[twin]], model, np.concatenate([points, points * MIRROR])
        )
        left, right = weights[0, :3000], weights[1, 3000:]
        assert (left > 0.5).sum() > 100, d.name
        np.testing.assert_allclose(right, left, atol=0.02, err_msg=d.name)
        if d.side == "L":  # fibres mirror too (a ring's loop direction reverses)
            inside = left > 0.5
            fibre_left = directions[0, :3000][inside]
            fibre_right = directions[1, 3000:][inside] * MIRROR
            assert np.einsum("ij,ij->i", fibre_left, fibre_right).min() > 0.99, d.name


def test_chunking_does_not_change_the_fields(definitions, model, monkeypatch):
    rng = np.random.default_rng(3)
    points = (rng.normal(0, 3, (5000, 3)) + [0, -2, 9]).astype(np.float32)
    some = definitions[:6]
    whole = muscle_fields(some, model, points)
    monkeypatch.setattr(muscles, "CHUNK_POINTS", 777)
    chunked = muscle_fields(some, model, points)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


# --- errors ------------------------------------------------------------------------------

GOOD = """
[zygomaticus_major_L]
kind = "linear"
mirror = true
anchors = [4291, 4384, 2407]
depths = [0.6, 0.9, 0.6]
thickness = 0.5
width = 0.9
max_contraction = 0.3
group = "cheeks"
action_units = ["AU12"]
description = "Left zygomaticus major."
"""


def write(tmp_path, text):
    path = tmp_path / "muscles.toml"
    path.write_text(text)
    return path


def test_a_small_file_loads_with_its_mirror(tmp_path, model):
    loaded = load_muscle_definitions(write(tmp_path, GOOD), face_model=model)
    assert [d.name for d in loaded] == ["zygomaticus_major_L", "zygomaticus_major_R"]
    assert loaded[1].side == "R" and loaded[0].side == "L"
    assert "right" in loaded[1].description.lower()


@pytest.mark.parametrize(
    "old, new, problem",
    [
        ("width = 0.9", "widht = 0.9", "unknown key widht"),
        ("[4291, 4384, 2407]", "[4291, 4384, 99999]", "anchor vertex 99999 is out of range"),
        ("[4291, 4384, 2407]", "[4291, 4384, 20000]", "not a skin vertex"),
        ("[4291, 4384, 2407]", "[4291]", "at least 2"),
        ("depths = [0.6, 0.9, 0.6]", "depths = [0.6, 0.9]", "one per anchor"),
        ("depths = [0.6, 0.9, 0.6]", "depths = [0.6, -0.9, 0.6]", "negative"),
        ("thickness = 0.5", "thickness = 0", "thickness is 0"),
        ("thickness = 0.5", "thickness = -0.5", "positive number"),
        ("max_contraction = 0.3", "max_contraction = 1.5", "between 0 and 1"),
        ('kind = "linear"', 'kind = "spiral"', "kind is 'spiral'"),
        ('group = "cheeks"', 'group = "ears"', "group is 'ears'"),
        ('["AU12"]', '["smile"]', "action_units"),
        ('kind = "linear"\n', "", "missing key kind"),
    ],
)
def test_bad_definitions_name_the_muscle_and_the_problem(tmp_path, model, old, new, problem):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(DataError, match="zygomaticus_major_L") as error:
        load_muscle_definitions(path, face_model=model)
    assert problem in str(error.value)


def test_a_ring_needs_three_anchors(tmp_path, model):
    text = GOOD.replace('"linear"', '"ring"').replace("mirror = true\n", "")
    text = text.replace("[4291, 4384, 2407]", "[4291, 4384]").replace("[0.6, 0.9, 0.6]", "[1, 1]")
    with pytest.raises(DataError, match="zygomaticus_major_L: 2 anchor.*at least 3"):
        load_muscle_definitions(write(tmp_path, text), face_model=model)


def test_a_muscle_written_and_mirrored_is_an_error(tmp_path, model):
    twin = GOOD.replace("_L]", "_R]").replace("mirror = true\n", "")
    with pytest.raises(DataError, match="zygomaticus_major_R is defined twice"):
        load_muscle_definitions(write(tmp_path, GOOD + twin), face_model=model)


def test_mirror_is_only_for_left_muscles(tmp_path, model):
    text = GOOD.replace("_L]", "_R]")
    with pytest.raises(DataError, match="zygomaticus_major_R: mirror = true is for left"):
        load_muscle_definitions(write(tmp_path, text), face_model=model)


LID = """
[orbicularis_oculi_palpebral_L]
kind = "lid"
mirror = true
anchors = [6588, 6548]
depths = [0.0, 0.0]
thickness = 0.08
max_contraction = 1.0
lids = ["upper", "lower"]
action = "close"
group = "eyes"
action_units = ["AU45"]
description = "Left palpebral orbicularis."
"""


@pytest.mark.parametrize(
    "old, new, problem",
    [
        ('action = "close"', 'action = "wink"', "action is 'wink'"),
        ('lids = ["upper", "lower"]', 'lids = ["middle"]', "lids is ['middle']"),
        ("[6588, 6548]", "[6588, 6548, 4291]", "names the two canthi"),
        ("_L]", "]", "end its name in _L or _R"),
    ],
)
def test_bad_lid_muscles_name_the_muscle_and_the_problem(tmp_path, model, old, new, problem):
    text = LID.replace(old, new)
    if old == "_L]":
        text = text.replace("mirror = true\n", "")
    with pytest.raises(DataError, match="orbicularis_oculi_palpebral") as error:
        load_muscle_definitions(write(tmp_path, text), face_model=model)
    assert problem in str(error.value)


def test_lid_keys_on_a_volume_muscle_are_an_error(tmp_path, model):
    text = GOOD.replace('group = "cheeks"', 'group = "cheeks"\nlids = ["upper"]')
    with pytest.raises(DataError, match="lids and action are for lid muscles"):
        load_muscle_definitions(write(tmp_path, text), face_model=model)


def test_a_lid_muscle_away_from_the_canthi_names_them(tmp_path, model):
    from physface.sim.eyelids import build_lid_rig

    definitions = load_muscle_definitions(
        write(tmp_path, LID.replace("[6588, 6548]", "[6588, 4291]")), face_model=model
    )
    with pytest.raises(DataError, match="must be the left eye's canthi, 6588 .* and 6548"):
        build_lid_rig(model, definitions)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[broken\n")
    with pytest.raises(DataError, match="not valid TOML"):
        load_muscle_definitions(path)
