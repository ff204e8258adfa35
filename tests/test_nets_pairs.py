"""Paired data (nets.pairs, nets.prepare, ``python -m physface prepare``) on a small
synthetic pair set: an LR tet grid and a finer HR box surface inside it, written as OBJ
folders (and a meshio .vtu), prepared, loaded back; and a face-dataset-like folder read
without its rig. Fast: no rig, no simulation."""

import json

import meshio
import numpy as np
import pytest
from scipy.spatial import cKDTree
from synthetic import tet_grid

from physface.__main__ import main as physface_main
from physface.nets.pairs import PairSet, face_splits, load_pairs, write_pairs
from physface.sim.dataset_format import FORMAT, write_json, write_npz
from physface.sim.errors import DataError
from physface.sim.tetmesh import TET_FACES, boundary_faces, signed_volumes
from physface.sim.tolerances import SETTLED_RESIDUAL


def hr_surface():
    """A finer closed box surface inside the LR box: (positions (M, 3) f4, triangles)."""
    nodes, tets = tet_grid((9, 7, 5), (4.0, 3.0, 2.0))
    faces = boundary_faces(tets)
    used, triangles = np.unique(faces, return_inverse=True)
    positions = nodes[used] * 0.9 + np.array([0.2, 0.15, 0.1])
    return positions.astype(np.float32), triangles.reshape(-1, 3).astype(np.int64)


def warp(points, t):
    """A smooth non-affine motion (cm)."""
    p = points.astype(np.float64)
    out = p.copy()
    out[:, 0] += 0.2 * t * np.sin(p[:, 1])
    out[:, 1] += 0.1 * t * p[:, 0] * p[:, 2]
    out[:, 2] += 0.15 * t * np.cos(p[:, 0])
    return out.astype(np.float32)


def write_obj(path, positions, faces=None):
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in positions]
    if faces is not None:
        lines += ["f " + " ".join(str(i + 1) for i in face) for face in faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


LR_SHAPE, LR_SIZE = (5, 4, 3), (4.4, 3.3, 2.2)
SEQUENCES = {"walk": [0.0, 0.5, 1.0], "jump": [0.3, -0.7]}


@pytest.fixture(scope="module")
def obj_folders(tmp_path_factory):
    """LR_DIR (rest.obj with each tet's four triangles, per-sequence frame folders) and
    HR_DIR (rest.obj with triangles, frames), plus what was written."""
    root = tmp_path_factory.mktemp("objs")
    lr_rest, lr_tets = tet_grid(LR_SHAPE, LR_SIZE)
    skin_rest, triangles = hr_surface()
    write_obj(root / "lr" / "rest.obj", lr_rest, lr_tets[:, TET_FACES].reshape(-1, 3))
    write_obj(root / "hr" / "rest.obj", skin_rest, triangles)
    truth = {}
    for name, times in SEQUENCES.items():
        lr = np.stack([warp(lr_rest, t) for t in times])
        skin = np.stack([warp(skin_rest, t) for t in times])
        for f in range(len(times)):  # frame_2 before frame_10: natural order
            write_obj(root / "lr" / name / f"frame_{f * 8 + 2}.obj", lr[f])
            write_obj(root / "hr" / name / f"frame_{f * 8 + 2}.obj", skin[f])
        truth[name] = (lr, skin)
    (root / "splits.json").write_text(json.dumps({"test": ["jump"]}))
    return root, lr_rest, lr_tets, skin_rest, triangles, truth


@pytest.fixture(scope="module")
def prepared(obj_folders, tmp_path_factory):
    root = obj_folders[0]
    out = tmp_path_factory.mktemp("prepared")
    args = ["prepare", "--lr", str(root / "lr"), "--hr", str(root / "hr"), "--out", str(out)]
    assert physface_main([*args, "--splits", str(root / "splits.json")]) == 0
    return out, load_pairs(out)


def test_prepare_round_trips_the_obj_folders(obj_folders, prepared):
    _, lr_rest, lr_tets, skin_rest, triangles, truth = obj_folders
    out, pairs = prepared
    rest = pairs.rest
    assert (out / "pairs.json").is_file() and (out / "splits.json").is_file()
    np.testing.assert_allclose(rest.lr_rest, lr_rest, atol=1e-6)
    np.testing.assert_allclose(rest.skin_rest, skin_rest, atol=1e-6)
    np.testing.assert_array_equal(rest.skin_triangles, triangles)
    # tets from four triangles each: the same node sets, positively oriented
    np.testing.assert_array_equal(np.sort(rest.lr_tets, axis=1), np.sort(lr_tets, axis=1))
    assert (signed_volumes(rest.lr_rest, rest.lr_tets) > 0).all()
    assert rest.skin_vertices is None and rest.key
    assert list(pairs.sequences) == ["jump", "walk"]
    for name, (lr, skin) in truth.items():
        sequence = pairs.sequences[name]
        np.testing.assert_allclose(sequence.lr, lr, atol=1e-6)
        np.testing.assert_allclose(sequence.skin, skin, atol=1e-6)
        assert sequence.converged.dtype == bool and sequence.converged.all()
        assert sequence.lr.dtype == np.float32 and sequence.skin.dtype == np.float32
    assert pairs.splits()["test"] == ["jump"] and pairs.splits()["train"] == ["walk"]


def test_rest_tables_are_consistent(prepared):
    rest = prepared[1].rest
    # the embedding reproduces the rest skin (every HR vertex lies inside the LR box)
    embedded = np.einsum(
        "mk,mkd->md", rest.skin_weights, rest.lr_rest[rest.lr_tets[rest.skin_elements]]
    )
    np.testing.assert_allclose(embedded, rest.skin_rest, atol=1e-5)
    assert (rest.skin_weights >= -1e-5).all()
    # lr_knn: five other nodes, the first an edge away
    assert rest.lr_knn.shape == (rest.lr_count, 5)
    assert not (rest.lr_knn == np.arange(rest.lr_count)[:, None]).any()
    # skin → LR rows: ascending, distinct, never shorter than the straight distance (a path
    # along the surface plus the depth) and local (within a few LR spacings)
    d, i = rest.skin_lr_distances, rest.skin_lr_neighbours
    assert d.shape == i.shape == (rest.skin_count, 20)
    assert (np.diff(d, axis=1) >= 0).all()
    assert all(len(set(row)) == 20 for row in i)
    straight = np.linalg.norm(rest.lr_rest[i] - rest.skin_rest[:, None], axis=2)
    assert (d >= straight - 1e-4).all()
    spacing = 1.1
    twentieth = cKDTree(rest.lr_rest).query(rest.skin_rest, k=20)[0][:, -1]
    assert (d[:, -1] <= twentieth + 3 * spacing).all()
    assert (d[:, 0] <= 2 * spacing).all()


def test_write_pairs_round_trips_and_is_deterministic(prepared, tmp_path):
    out, pairs = prepared
    again = write_pairs(tmp_path / "copy", pairs)
    loaded = load_pairs(again)
    for name, value in pairs.rest.arrays().items():
        np.testing.assert_array_equal(getattr(loaded.rest, name), value)
    assert loaded.rest.key == pairs.rest.key and loaded.splits() == pairs.splits()
    for name in ("rest.npz", "sequences/walk.npz", "sequences/jump.npz"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    (again / "pairs.json").unlink()  # as an interrupted write leaves it
    with pytest.raises(DataError, match="neither paired data"):
        load_pairs(again)


def test_prepare_from_a_meshio_file_and_a_flat_folder(obj_folders, tmp_path):
    _, lr_rest, lr_tets, skin_rest, triangles, truth = obj_folders
    meshio.write(tmp_path / "lr.vtu", meshio.Mesh(lr_rest, [("tetra", lr_tets)]))
    lr, skin = truth["walk"]
    for f in range(len(lr)):  # no rest.obj: the first frame is the rest
        write_obj(tmp_path / "lr" / f"{f:03d}.obj", lr[f])
        write_obj(tmp_path / "hr" / f"{f:03d}.obj", skin[f], triangles if f == 0 else None)
    out = tmp_path / "out"
    args = ["prepare", "--lr", str(tmp_path / "lr"), "--hr", str(tmp_path / "hr")]
    assert physface_main([*args, "--out", str(out), "--lr-mesh", str(tmp_path / "lr.vtu")]) == 0
    pairs = load_pairs(out)
    np.testing.assert_array_equal(pairs.rest.lr_tets, lr_tets)
    np.testing.assert_allclose(pairs.rest.lr_rest, lr_rest, atol=1e-6)
    np.testing.assert_allclose(pairs.rest.skin_rest, skin[0], atol=1e-6)
    (sequence,) = pairs.sequences.values()
    assert sequence.name == "sequence" and sequence.split == "train"
    np.testing.assert_allclose(sequence.lr, lr, atol=1e-6)
    np.testing.assert_allclose(sequence.skin, skin, atol=1e-6)


def _prepare_error(capsys, *args) -> str:
    assert physface_main(["prepare", *args]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("physface: error: ")
    return lines[0]


def test_prepare_refuses_bad_input_in_one_line(obj_folders, tmp_path, capsys):
    root, lr_rest, lr_tets, skin_rest, triangles, truth = obj_folders
    out = ["--out", str(tmp_path / "out")]
    hr = ["--hr", str(root / "hr")]
    assert "is not a folder" in _prepare_error(capsys, "--lr", str(tmp_path / "nope"), *hr, *out)

    bad = tmp_path / "short_frame"  # one LR frame with a vertex missing
    for f in range(2):
        write_obj(bad / "walk" / f"{f}.obj", truth["walk"][0][0, : -1 if f else None])
    write_obj(bad / "rest.obj", lr_rest, lr_tets[:, TET_FACES].reshape(-1, 3))
    hr_two = tmp_path / "hr_two"
    write_obj(hr_two / "rest.obj", skin_rest, triangles)
    for f in range(2):
        write_obj(hr_two / "walk" / f"{f}.obj", skin_rest)
    line = _prepare_error(capsys, "--lr", str(bad), "--hr", str(hr_two), *out)
    assert "1.obj has 59 vertices; the rest has 60" in line

    line = _prepare_error(capsys, "--lr", str(root / "lr"), "--hr", str(hr_two), *out)
    assert "LR sequences (jump, walk) and the HR sequences (walk) differ" in line

    not_tets = tmp_path / "not_tets"  # faces that are not four triangles per tet
    write_obj(not_tets / "rest.obj", lr_rest, lr_tets[:, TET_FACES].reshape(-1, 3)[:-1])
    for f in range(2):
        write_obj(not_tets / "walk" / f"{f}.obj", lr_rest)
    assert "is not a tet mesh" in _prepare_error(
        capsys, "--lr", str(not_tets), "--hr", str(hr_two), *out
    )
    meshio.write(tmp_path / "tri.vtu", meshio.Mesh(skin_rest, [("triangle", triangles)]))
    line = _prepare_error(
        capsys,
        "--lr",
        str(not_tets),
        "--hr",
        str(hr_two),
        *out,
        "--lr-mesh",
        str(tmp_path / "tri.vtu"),
    )
    assert "is not a tet mesh (its cells: triangle)" in line

    hr_count = tmp_path / "hr_count"  # the HR rest and frames differ in vertex count
    write_obj(hr_count / "rest.obj", skin_rest, triangles)
    for f in range(2):
        write_obj(hr_count / "walk" / f"{f}.obj", skin_rest[:-3])
    lr_two = tmp_path / "lr_two"
    write_obj(lr_two / "rest.obj", lr_rest, lr_tets[:, TET_FACES].reshape(-1, 3))
    for f in range(2):
        write_obj(lr_two / "walk" / f"{f}.obj", lr_rest)
    line = _prepare_error(capsys, "--lr", str(lr_two), "--hr", str(hr_count), *out)
    assert "HR frame" in line and "the rest has" in line

    (tmp_path / "splits.json").write_text(json.dumps({"test": ["run"]}))
    line = _prepare_error(
        capsys,
        "--lr",
        str(lr_two),
        "--hr",
        str(hr_two),
        *out,
        "--splits",
        str(tmp_path / "splits.json"),
    )
    assert "names 'run', which is not a sequence here" in line


# --- a face dataset folder ---------------------------------------------------------------------

FACE_SEQUENCES = [
    ("amazement", "theme", "amazement"),
    ("amazement_v1", "theme", "amazement"),
    ("pain", "theme", "pain"),
    ("anger", "theme", "anger"),
    ("fear", "theme", "fear"),
    ("head_shake", "generalisation", "anger"),
]


@pytest.fixture(scope="module")
def face_dataset(tmp_path_factory):
    """A folder in the face dataset's layout (sim.dataset_format) whose rig is not in the
    cache: 5 extra 'ICT' vertices that are not embedded, the HR surface embedded."""
    folder = tmp_path_factory.mktemp("face")
    lr_rest, lr_tets = tet_grid(LR_SHAPE, LR_SIZE)
    skin, triangles = hr_surface()
    extra = np.full((5, 3), 9.0, np.float32)
    neutral = np.concatenate([extra, skin])
    embedded = np.arange(5, len(neutral), dtype=np.int32)
    all_triangles = np.concatenate([triangles + 5, [[0, 1, 5], [2, 3, 4]]]).astype(np.int32)
    write_npz(
        folder / "rest.npz",
        {"neutral": neutral, "embedded_vertices": embedded, "triangles": all_triangles,
         "skin_triangles": all_triangles, "lr_rest": lr_rest, "lr_tets": lr_tets.astype(np.int32)},
    )  # fmt: skip
    from physface.sim.tetmesh import embed_points

    elements, weights = embed_points(skin, lr_rest, lr_tets)
    meta = {"format": FORMAT, "preset": "tiny", "rig_key": "tiny_0000000000000000",
            "rig_sha256": "0" * 64, "sequences": []}  # fmt: skip
    frames = {"amazement": 8, "pain": 7}
    for s, (name, kind, theme) in enumerate(FACE_SEQUENCES):
        count = frames.get(name, 3)
        meta["sequences"].append({"name": name, "kind": kind, "theme": theme, "frames": count})
        times = np.linspace(0.1, 1.0, count) * (1 + 0.1 * s)
        volume = np.stack([warp(lr_rest, t) for t in times])
        hr = np.stack([np.concatenate([extra, warp(skin, t)]) for t in times])
        lr_skin = hr.copy()
        lr_skin[:, embedded] = np.einsum("mk,fmkd->fmd", weights, volume[:, lr_tets[elements]])
        converged = np.arange(count) % 3 != 2
        # fear's unconverged frame stalled below SETTLED_RESIDUAL (kept), the others above
        stalled = SETTLED_RESIDUAL * (0.5 if name == "fear" else 2.0)
        residual = np.where(converged, 1e-4, stalled).astype(np.float32)
        common = {"iterations": np.ones(count, np.int32)}
        write_npz(
            folder / name / "lr.npz",
            {"skin": lr_skin, "volume": volume, "converged": np.ones(count, bool),
             "residual": np.zeros(count, np.float32), **common},
        )  # fmt: skip
        write_npz(
            folder / name / "hr.npz",
            {"skin": hr, "converged": converged, "residual": residual, **common},
        )
        heads = np.tile(np.eye(4, dtype=np.float32), (count, 1, 1))
        write_npz(folder / name / "controls.npz", {"head_transform": heads})
        for resolution in ("lr", "hr"):
            write_json(
                folder / name / f"{resolution}.json",
                {"complete": True, "file": f"{resolution}.npz"},
            )
    write_json(folder / "dataset.json", meta)
    return folder, meta, skin, triangles, elements, weights


def test_face_dataset_without_its_rig(face_dataset):
    folder, meta, skin, triangles, elements, weights = face_dataset
    pairs = load_pairs(folder)
    assert "folder alone" in pairs.source and "not in the cache" in pairs.source
    rest = pairs.rest
    np.testing.assert_array_equal(rest.skin_vertices, np.arange(5, 5 + len(skin)))
    np.testing.assert_array_equal(rest.skin_rest, skin)
    np.testing.assert_array_equal(rest.skin_triangles, triangles)  # the extra ones dropped
    # the embedding recovered from the LR skin reproduces it
    recovered = np.einsum(
        "mk,mkd->md", rest.skin_weights, rest.lr_rest[rest.lr_tets[rest.skin_elements]]
    )
    original = np.einsum("mk,mkd->md", weights, rest.lr_rest[rest.lr_tets[elements]])
    np.testing.assert_allclose(recovered, original, atol=1e-5)
    assert pairs.splits() == {
        "train": ["amazement", "pain"],
        "val": ["amazement_v1", "pain-val"],
        "test": ["anger", "fear"],
        "generalisation": ["head_shake"],
    }
    assert pairs.sequences["pain"].frames == 6 and pairs.sequences["pain-val"].frames == 1
    assert pairs.sequences["amazement"].frames == 8
    np.testing.assert_array_equal(pairs.sequences["anger"].converged, [True, True, False])
    np.testing.assert_array_equal(pairs.sequences["fear"].converged, [True, True, True])
    head = pairs.sequences["head_shake"]
    assert head.lr.shape == (3, rest.lr_count, 3) and head.skin.shape == (3, len(skin), 3)
    with pytest.raises(DataError, match="not in the cache"):
        load_pairs(folder, tables="rig")
    assert face_splits(meta)["pain"] == "train+val"


def test_face_dataset_converts_to_the_neutral_format(face_dataset, tmp_path):
    pairs = load_pairs(face_dataset[0])
    loaded = load_pairs(write_pairs(tmp_path / "neutral", pairs))
    assert isinstance(loaded, PairSet) and loaded.splits() == pairs.splits()
    np.testing.assert_array_equal(loaded.rest.skin_vertices, pairs.rest.skin_vertices)
    for name, sequence in pairs.sequences.items():
        np.testing.assert_array_equal(loaded.sequences[name].skin, sequence.skin)
        np.testing.assert_array_equal(loaded.sequences[name].converged, sequence.converged)


def test_in_head_frame_undoes_each_frames_head_motion():
    """A face dataset is read in the head frame: world points of a moved head come back
    to where they were in the head's own frame (a head shake is not a deformation)."""
    from scipy.spatial.transform import Rotation

    from physface.nets.pairs import in_head_frame

    rng = np.random.default_rng(0)
    local = rng.normal(size=(3, 7, 3)).astype(np.float32)
    head = np.tile(np.eye(4), (3, 1, 1))
    head[1, :3, :3] = Rotation.from_rotvec([0.3, 0.5, 0.1]).as_matrix()
    head[1, :3, 3] = [1.0, 2.0, 3.0]
    head[2, :3, :3] = Rotation.from_rotvec([0.0, -0.4, 0.0]).as_matrix()
    world = np.einsum("fij,fpj->fpi", head[:, :3, :3], local) + head[:, None, :3, 3]
    np.testing.assert_allclose(in_head_frame(world, head), local, atol=1e-5)
    assert in_head_frame(local, np.tile(np.eye(4), (3, 1, 1))) is not None
