"""HR conforming mesh on the tiny preset: validity, quality, size, conformity, bones, lips."""

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from physface.sim import cache
from physface.sim.anatomy import build_anatomy
from physface.sim.face_model import load_face_model
from physface.sim.hr_mesh import (
    COUNT_TOLERANCE,
    _keep_and_label,
    _tetwild_cached,
    build_hr_mesh,
    estimate_edge_length,
    lip_contact_surfaces,
)
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


def test_mesh_is_a_function_of_the_stored_mesher_output(built):
    """fTetWild differs run to run (README "Rig"), so the cache entry is what makes the same
    inputs give the same mesh: the labelling and lip cut are deterministic on it, and
    build_hr_mesh returns exactly that mesh when its first edge length is accepted."""
    model, surface, anatomy, lr, hr = built
    clip, target = ClipRegion(), 25.0 * lr.element_count
    edge = estimate_edge_length(surface, anatomy, clip, target)
    nodes, tets = _tetwild_cached(surface, anatomy, clip, edge, cache=True)  # stored by `built`
    first = _keep_and_label(model, surface, anatomy, clip, edge, nodes.copy(), tets.copy())
    again = _keep_and_label(model, surface, anatomy, clip, edge, nodes.copy(), tets.copy())
    for name in ("rest_positions", "tets", "node_labels", "lip_side"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    if abs(first.element_count / target - 1.0) <= COUNT_TOLERANCE:
        for name in ("rest_positions", "tets", "node_labels", "lip_side"):
            assert np.array_equal(getattr(first, name), getattr(hr, name)), name


def test_truncated_mesher_entry_is_run_again_with_one_line(built, tmp_path, monkeypatch):
    """A truncated fTetWild cache entry: removed, meshed again, said once, then read."""
    _, surface, anatomy, _, _ = built
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    coarse = 1.5  # cm: a quick fTetWild run
    lines = []
    _tetwild_cached(surface, anatomy, ClipRegion(), coarse, cache=True, log=lines.append)
    (path,) = (tmp_path / "hr_mesh").iterdir()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    nodes, tets = _tetwild_cached(surface, anatomy, ClipRegion(), coarse, True, lines.append)
    assert len(lines) == 1
    assert lines[0].startswith(f"PhysFace: the cached fTetWild mesh at {path} was unreadable (")
    stored = cache.read_arrays(path)
    assert np.array_equal(stored["nodes"], nodes) and np.array_equal(stored["tets"], tets)
    assert len(tets) and tets.max() < len(nodes)
    again = _tetwild_cached(surface, anatomy, ClipRegion(), coarse, True, lines.append)
    assert np.array_equal(again[1], tets) and len(lines) == 1


def test_parts_without_bone_are_found():
    from physface.sim.hr_mesh import _loose_elements

    tets = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.int32)
    labels = np.zeros(9, dtype=np.int8)
    labels[0] = SKULL
    assert _loose_elements(tets, labels).tolist() == [False, False, True]


def test_ctrl_c_still_stops_python_after_ftetwild():
    """fTetWild (geogram) installs native signal handlers; after a run, SIGINT must still
    raise KeyboardInterrupt (a dataset run building its rig answers Ctrl-C with one line,
    not a kill). Run in a child process: a broken handler would kill it, not pytest."""
    import subprocess
    import sys

    script = """
import os, signal, time
import numpy as np
from physface.sim.hr_mesh import _run_tetwild
v = np.array([[0,0,0],[1,0,0],[1,1,0],[0,1,0],[0,0,1],[1,0,1],[1,1,1],[0,1,1]], float)
f = np.array([[0,2,1],[0,3,2],[4,5,6],[4,6,7],[0,1,5],[0,5,4],[1,2,6],[1,6,5],[2,3,7],
              [2,7,6],[3,0,4],[3,4,7]])
nodes, tets = _run_tetwild(v, f, 0.5, 1e-3, np.zeros((0, 3)), np.zeros((0, 4), int), np.zeros(0))
assert len(tets) > 0
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(2)
except KeyboardInterrupt:
    print("caught")
"""
    from children import default_sigint

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, preexec_fn=default_sigint)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "caught"
