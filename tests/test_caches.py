"""The cache folder: damaged entries heal with one line, a folder that cannot be written
fails before any work, atomic writes leave ordinary permissions."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from physface.sim import cache
from physface.sim.errors import CacheError
from physface.sim.face_model import load_face_model
from physface.sim.pc2 import read_pc2, write_pc2


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    else:  # a byte of the second array's data flipped: its CRC no longer matches
        flipped = bytearray(data)
        flipped[len(data) * 3 // 4] ^= 0xFF
        path.write_bytes(bytes(flipped))


ARRAYS = {"a": np.arange(5000, dtype=np.float32), "b": np.ones((3000, 3), dtype=np.int32)}


def cached_arrays(path, builds, lines, rebuild=False):
    def build():
        builds.append(1)
        return dict(ARRAYS)

    return cache.read_or_rebuild(
        path, cache.read_arrays, build, cache.write_arrays, "test arrays", lines.append, rebuild
    )


@pytest.mark.parametrize("how", ["truncated", "emptied", "bad CRC"])
def test_damaged_entry_is_removed_rebuilt_and_reported_once(tmp_path, how):
    path = tmp_path / "entry.npz"
    builds, lines = [], []
    cached_arrays(path, builds, lines)
    damage(path, how)
    values = cached_arrays(path, builds, lines)
    assert len(builds) == 2 and len(lines) == 1
    assert lines[0].startswith(f"PhysFace: the cached test arrays at {path} was unreadable (")
    assert lines[0].endswith("); rebuilding it.")
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(values[name], array)
    again = cached_arrays(path, builds, lines)  # read back, no build, nothing said
    assert len(builds) == 2 and len(lines) == 1
    np.testing.assert_array_equal(again["b"], ARRAYS["b"])


def test_entry_missing_an_array_is_rebuilt(tmp_path):
    path = tmp_path / "entry.npz"
    cache.write_arrays(path, {"a": ARRAYS["a"]})
    builds, lines = [], []
    cache.read_or_rebuild(
        path,
        lambda p: cache.read_arrays(p, ("a", "b")),
        lambda: builds.append(1) or dict(ARRAYS),
        cache.write_arrays,
        "test arrays",
        lines.append,
    )
    assert builds == [1] and "KeyError" in lines[0]
    assert set(cache.read_arrays(path)) == {"a", "b"}


def test_rebuild_skips_a_sound_entry(tmp_path):
    path = tmp_path / "entry.npz"
    builds, lines = [], []
    cached_arrays(path, builds, lines)
    cached_arrays(path, builds, lines, rebuild=True)
    assert len(builds) == 2 and not lines


# --- a cache folder that cannot be used -----------------------------------------------------


@pytest.mark.parametrize("where", ["the folder", "its parent"])
def test_cache_path_that_is_a_file_gives_one_line(tmp_path, monkeypatch, where):
    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" if where == "the folder" else tmp_path / "file" / "cache"
    monkeypatch.setenv(cache.ENV_VAR, str(target))
    with pytest.raises(CacheError) as caught:
        load_face_model()
    message = str(caught.value)
    assert str(target) in message and "Set PHYSFACE_CACHE to a writable folder" in message
    assert ("is a file, not a folder" if where == "the folder" else "cannot be created") in message


@pytest.fixture
def shared_tmp():
    """A folder another user can enter (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="physface-test-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


DROP_PRIVILEGES = """
import os, sys
import encodings.cp437, numpy, physface.sim.cache, physface.sim.face_model  # read while root
if os.geteuid() == 0:  # root writes anywhere: become nobody so the permissions apply
    os.setgid(65534)
    os.setuid(65534)
"""


def run_without_privileges(code: str, *args: str, env: dict | None = None):
    """Run Python code under file permissions that apply (as ``nobody`` when run as root)."""
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", DROP_PRIVILEGES + code, *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


READ_ONLY_CHILD = """
import sys
from pathlib import Path
from physface.sim.cache import read_arrays, read_or_rebuild, write_arrays
from physface.sim.errors import CacheError
folder, builds = Path(sys.argv[1]), []
def build():
    builds.append(1)
    return {"a": [1.0]}
print("sound entry:", sorted(read_or_rebuild(folder / "sound.npz", read_arrays, build,
                                             write_arrays, "thing")))
try:
    read_or_rebuild(folder / "missing.npz", read_arrays, build, write_arrays, "thing")
except CacheError as error:
    print("CacheError:", error)
print("builds:", len(builds))
"""


def test_read_only_cache_reads_entries_and_fails_before_building(shared_tmp):
    folder = shared_tmp / "cache"
    folder.mkdir()
    cache.write_arrays(folder / "sound.npz", {"a": np.zeros(3)})
    (folder / "sound.npz").chmod(0o644)
    folder.chmod(0o555)
    result = run_without_privileges(READ_ONLY_CHILD, str(folder))
    assert result.returncode == 0, result.stderr
    assert "sound entry: ['a']" in result.stdout
    assert f"CacheError: The cache folder {folder} is not writable" in result.stdout
    assert "Set PHYSFACE_CACHE to a writable folder" in result.stdout
    assert "builds: 0" in result.stdout


FACE_MODEL_CHILD = """
import sys
from physface.sim.face_model import load_face_model
from physface.sim.errors import PhysFaceError
try:
    load_face_model(sys.argv[1])
except PhysFaceError as error:
    print(type(error).__name__, error)
"""


def test_read_only_cache_stops_the_face_model_before_the_import(shared_tmp):
    """The data folder's identity files are broken, so an import would end in DataError:
    CacheError shows the cache was checked first."""
    model = load_face_model()
    ict = shared_tmp / "data" / "ICT-FaceKit" / "FaceXModel"
    ict.mkdir(parents=True)
    index = {
        "expressions": model.expression_names,
        "idx_to_landmark_verts": model.landmarks.tolist(),
    }
    (ict / "vertex_indices.json").write_text(json.dumps(index))
    (ict / "generic_neutral_mesh.obj").write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in model.neutral.tolist())
        + "vt 0 0\nf 1/1 2/1 3/1\n"
    )
    for name in [f"identity{i:03d}" for i in range(100)] + model.expression_names:
        (ict / f"{name}.obj").write_text("v 0 0 0\n")
    for path in [shared_tmp / "data", *(shared_tmp / "data").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    read_only = shared_tmp / "cache"
    read_only.mkdir(mode=0o555)
    read_only.chmod(0o555)
    result = run_without_privileges(
        FACE_MODEL_CHILD, str(shared_tmp / "data"), env={cache.ENV_VAR: str(read_only)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"CacheError The cache folder {read_only / 'face_model'} is not writable"
    ), result.stdout


# --- atomic writes --------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gets_the_mode_of_an_ordinary_write(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        with cache.atomic_path(tmp_path / "atomic.bin") as tmp:
            tmp.write_bytes(b"data")
        (tmp_path / "plain.bin").write_bytes(b"data")
        write_pc2(tmp_path / "bake.pc2", np.zeros((2, 4, 3), np.float32), 1.0)
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "plain.bin") == expected
    assert mode_of(tmp_path / "atomic.bin") == expected
    assert mode_of(tmp_path / "bake.pc2") == expected
    assert read_pc2(tmp_path / "bake.pc2")[0].shape == (2, 4, 3)


def test_atomic_write_keeps_an_existing_files_mode(tmp_path):
    target = tmp_path / "shared.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with cache.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert mode_of(target) == 0o640 and target.read_bytes() == b"new"


def test_failed_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), cache.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["kept.bin"]


def test_a_damaged_rig_is_rebuilt_with_one_line(capsys):
    """A truncated rig in the cache is removed and built again, said once, and the
    rebuilt rig equals the one it replaces (the LR build is deterministic)."""
    from dataclasses import replace

    from physface.sim.face_model import face_model_key
    from physface.sim.rig import PRESETS, load_rig, rig_arrays, rig_cache_path

    good = load_rig("tiny", with_hr=False)
    path = rig_cache_path(replace(PRESETS["tiny"], build_hr=False), face_model_key())
    assert path.is_file()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    healed = load_rig("tiny", with_hr=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if "rebuilding" in line]
    assert len(lines) == 1 and "rig" in lines[0] and str(path) in lines[0]
    expected, got = rig_arrays(good), rig_arrays(healed)
    assert expected.keys() == got.keys()
    for name in expected:
        if name != "build_seconds":
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    load_rig("tiny", with_hr=False)
    assert "rebuilding" not in capsys.readouterr().err
