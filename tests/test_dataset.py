"""Performances and the paired dataset on the ``tiny`` rig: themes are smooth, bounded,
seeded and drive the muscles of their action units; the on-disk format reads back with
numpy alone; an interrupted run resumes to the same bytes as a straight one; LR and HR
frames of a sequence share their controls.

A few frames per sequence, so the whole file stays well under a minute.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from physface.sim.performances import (
    GENERALISATION,
    RANGE_THEMES,
    THEMES,
    generalisation_performance,
    load_performance_book,
    theme_performance,
)

FRAMES = 4


def _hr_available() -> bool:
    from pathlib import Path

    import physface.sim as sim_package

    return (Path(sim_package.__file__).parent / "hr_mesh.py").exists()


RESOLUTIONS = ("lr", "hr") if _hr_available() else ("lr",)
HR_SEQUENCES = ("amazement", "anger", "head_shake", "lip_spring", "cheek_sphere")


@pytest.fixture(scope="module")
def book():
    return load_performance_book()


@pytest.fixture(scope="module")
def settings():
    from physface.sim.dataset import DatasetSettings

    # A loose tolerance keeps the HR frames quick; resume must be exact whatever it is.
    return DatasetSettings(
        preset="tiny", frames=FRAMES, chunk_frames=2, tolerance=1e-3, max_iterations=60
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory, settings):
    """An uninterrupted in-process run of the dataset: every sequence in LR, those of
    HR_SEQUENCES in HR, FRAMES frames each."""
    from physface.sim.dataset import generate_dataset
    from physface.sim.dataset_tasks import forget_process_cache

    forget_process_cache()
    out = tmp_path_factory.mktemp("straight")
    generate_dataset(out, settings, ("lr",), workers=0, progress=False)
    if "hr" in RESOLUTIONS:  # HR for the sequences the tests compare (it is the slow part)
        generate_dataset(out, settings, ("hr",), HR_SEQUENCES, workers=0, progress=False)
    return out


# --- performances ----------------------------------------------------------------------------


@pytest.mark.parametrize("theme", THEMES)
def test_theme_is_smooth_bounded_and_long_enough(book, theme):
    performance = theme_performance(theme, book=book)
    assert performance.frames >= 100
    a, jaw = performance.activations, performance.jaw
    assert a.dtype == np.float32 and a.shape == (performance.frames, len(book.muscle_names))
    assert a.min() >= 0.0 and a.max() <= 1.0
    # Onset, apex, release: near neutral at both ends, well expressed in between.
    assert a[0].max() < 0.15 and a[-1].max() < 0.25 and a.max() > 0.6
    # Bounded change per frame (24 fps) and no jerks: activations, jaw degrees and mm.
    assert np.abs(np.diff(a, axis=0)).max() < 0.3
    assert np.abs(np.diff(a, 2, axis=0)).max() < 0.25  # fast syllables, no steps
    assert np.abs(np.diff(jaw[:, 0])).max() < 6.0
    assert np.abs(np.diff(jaw[:, 1:], axis=0)).max() < 1.0
    assert jaw[:, 0].max() > 3.0  # the jaw moves (speech or a jaw drop)


def test_total_default_length_is_in_the_paper_range(book):
    total = sum(book.themes[t].frames for t in THEMES)
    total += sum(int(book.generalisation[g]["frames"]) for g in GENERALISATION)
    assert 400 <= total <= 900


@pytest.mark.parametrize("theme", THEMES)
def test_theme_is_seeded(book, theme):
    first = theme_performance(theme, 120, seed=3, book=book)
    again = theme_performance(theme, 120, seed=3, book=book)
    other = theme_performance(theme, 120, seed=4, book=book)
    assert np.array_equal(first.activations, again.activations)
    assert np.array_equal(first.jaw, again.jaw)
    assert np.abs(first.activations - other.activations).max() > 0.05


def test_any_length(book):
    for frames in (1, 7, 333):
        performance = theme_performance("fear", frames, book=book)
        assert performance.activations.shape[0] == frames == performance.jaw.shape[0]
        assert np.isfinite(performance.activations).all()


@pytest.mark.parametrize("theme", THEMES)
def test_theme_activates_the_muscles_of_its_action_units(book, theme):
    performance = theme_performance(theme, book=book)
    peak = dict(zip(book.muscle_names, performance.activations.max(axis=0), strict=True))
    units: dict[str, float] = {}
    for beat in book.themes[theme].beats:
        for unit, value in beat.units.items():
            units[unit] = max(units.get(unit, 0.0), value)
    driven = set()
    for unit, value in units.items():
        for muscle in book.unit_muscles.get(unit, ()):
            driven.add(muscle)
            assert peak[muscle] > 0.45 * value, (theme, unit, muscle, peak[muscle])
    assert driven, theme
    # Muscles no unit of the theme (beats or speech lips) reaches stay near rest.
    lips = {u for s in book.themes[theme].speech for lip in s.lips for u in lip}
    reached = {m for u in set(units) | lips for m in book.unit_muscles.get(u, ())}
    for muscle in set(book.muscle_names) - reached:
        assert peak[muscle] < 0.1, (theme, muscle, peak[muscle])


def test_the_range_of_motion_reaches_every_volume_muscle_and_the_jaw(book):
    """The two range-of-motion themes together drive every muscle the volume simulates
    (the lid muscles act in sim/eyelids.py, not in the lattice) past half strength, open
    the jaw past 20 degrees, and stay smooth: full-strength onsets in about a third of a
    second (a fast facial action), so a looser bound than the paper's themes."""
    from physface.sim.muscles import load_muscle_definitions

    lids = {d.name for d in load_muscle_definitions() if d.kind == "lid"}
    peak = np.zeros(len(book.muscle_names))
    for theme in RANGE_THEMES:
        performance = theme_performance(theme, book=book)
        a, jaw = performance.activations, performance.jaw
        assert performance.frames >= 150 and a.min() >= 0.0 and a.max() <= 1.0
        assert a[0].max() < 0.15 and a[-1].max() < 0.15
        assert np.abs(np.diff(a, axis=0)).max() < 0.4
        assert np.abs(np.diff(jaw[:, 0])).max() < 6.0
        peak = np.maximum(peak, a.max(axis=0))
    weak = [m for m, p in zip(book.muscle_names, peak, strict=True) if p < 0.5 and m not in lids]
    assert not weak, weak
    jaw_peak = theme_performance("range_mouth", book=book).jaw[:, 0].max()
    assert jaw_peak > 20.0


def test_unknown_action_unit_is_a_clear_error(tmp_path):
    from physface.sim.errors import DataError
    from physface.sim.performances import DEFAULT_PATH

    text = DEFAULT_PATH.read_text().replace("AU1 = 0.9, AU2 = 0.8", "AU99 = 0.9, AU2 = 0.8", 1)
    path = tmp_path / "performances.toml"
    path.write_text(text)
    with pytest.raises(DataError, match="AU99"):
        load_performance_book(path)


def test_generalisation_sequences(book):
    from physface.sim.face_model import load_face_model
    from physface.sim.rig import load_rig

    model = load_face_model()
    anatomy = load_rig("tiny", with_hr=False).anatomy
    shake = generalisation_performance("head_shake", model, anatomy, book=book)
    assert shake.dynamics
    yaw = np.degrees(np.arctan2(shake.head_transform[:, 0, 2], shake.head_transform[:, 0, 0]))
    assert yaw.max() > 10 and yaw.min() < -10  # left and right
    assert np.allclose(shake.head_transform[:, 1, :3], [0, 1, 0], atol=1e-6)  # about +Y
    spring = generalisation_performance("lip_spring", model, anatomy, book=book)
    assert spring.spring_vertices[0] in (model.landmarks[48], model.landmarks[54])
    pull = np.linalg.norm(
        spring.spring_targets[:, 0] - model.neutral[spring.spring_vertices[0]], axis=1
    )
    assert pull[0] < 1e-6 and pull.max() > 0.8
    sphere = generalisation_performance("cheek_sphere", model, anatomy, book=book)
    centres, radius = sphere.sphere_centres[:, 0], sphere.sphere_radii[0]
    gap = np.linalg.norm(model.neutral[None] - centres[:, None], axis=2).min(axis=1) - radius
    assert gap[0] > 0.2 and gap.min() < -0.5  # starts clear, pushes into the cheek


# --- the dataset -----------------------------------------------------------------------------


def test_format_round_trip_with_numpy_alone(straight, settings, book):
    from physface.sim.dataset_format import read_controls, read_sequence

    meta = json.loads((straight / "dataset.json").read_text())
    assert meta["format"] == "physface-dataset/1" and meta["preset"] == "tiny"
    assert meta["rig_key"].startswith("tiny_") and len(meta["rig_sha256"]) == 64
    names = [s["name"] for s in meta["sequences"]]
    assert names == [*THEMES, *RANGE_THEMES, *GENERALISATION]
    with np.load(straight / "rest.npz") as rest:
        vertex_count = len(rest["neutral"])
        embedded = rest["embedded_vertices"]
        node_count = len(rest["lr_rest"])
    for name in names:
        manifest = json.loads((straight / name / "lr.json").read_text())
        assert manifest["complete"] and not (straight / name / "lr.parts").exists()
        with np.load(straight / name / "lr.npz") as frames:
            assert frames["skin"].shape == (FRAMES, vertex_count, 3)
            assert frames["skin"].dtype == np.float32
            assert frames["volume"].shape == (FRAMES, node_count, 3)
            assert frames["residual"].shape == (FRAMES,) and frames["iterations"].dtype == np.int32
            assert np.isfinite(frames["skin"]).all()
        with np.load(straight / name / "controls.npz") as controls:
            assert controls["activations"].shape == (FRAMES, len(book.muscle_names))
            assert controls["head_transform"].shape == (FRAMES, 4, 4)
    # The library's readers give the same arrays, and the controls round-trip exactly.
    frames = read_sequence(straight, "anger", "lr")
    with np.load(straight / "anger" / "lr.npz") as stored:
        assert np.array_equal(frames["skin"], stored["skin"])
    performance = read_controls(straight, "anger")
    again = theme_performance("anger", FRAMES, settings.seed, book)
    assert np.array_equal(performance.activations, again.activations)
    # Expressions move the embedded skin; the rest state is reproduced at frame 0 of a
    # still sequence (the spring's target starts on the rest corner).
    skin = read_sequence(straight, "anger", "lr")["skin"]
    with np.load(straight / "rest.npz") as rest:
        neutral = rest["neutral"]
    assert np.linalg.norm(skin[:, embedded] - neutral[embedded], axis=2).max() > 0.05
    spring = read_sequence(straight, "lip_spring", "lr")["skin"]
    assert np.abs(spring[0] - neutral).max() < 1e-3
    # Plain zip members with fixed timestamps: the same arrays give the same bytes.
    with zipfile.ZipFile(straight / "anger" / "lr.npz") as archive:
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())


def test_resume_after_interruption_gives_the_same_bytes(tmp_path, straight, settings):
    from physface.sim.dataset import generate_dataset
    from physface.sim.dataset_format import file_sha256
    from physface.sim.dataset_tasks import Interrupted, forget_process_cache

    # Quasi-static (warm start from the last two frames), dynamics (velocities), contacts.
    sequences = ("anger", "head_shake", "cheek_sphere")
    out = tmp_path / "resumed"
    for name in sequences:
        for resolution in RESOLUTIONS:  # each killed after its third frame, mid-chunk
            with pytest.raises(Interrupted):
                generate_dataset(
                    out,
                    settings,
                    (resolution,),
                    (name,),
                    workers=0,
                    progress=False,
                    interrupt_after=3,
                )
            manifest = json.loads((out / name / f"{resolution}.json").read_text())
            assert not manifest["complete"] and manifest["chunks"][-1]["stop"] == 2
    forget_process_cache()  # a fresh process: the state comes from the checkpoints only
    run = generate_dataset(out, settings, RESOLUTIONS, sequences, workers=0, progress=False)
    computed = {(t["sequence"], t["resolution"]): t["computed"] for t in run.tasks}
    assert set(computed.values()) == {FRAMES - 2}  # resumed from frame 2, not redone
    for name in sequences:
        for resolution in RESOLUTIONS:
            assert file_sha256(out / name / f"{resolution}.npz") == file_sha256(
                straight / name / f"{resolution}.npz"
            ), (name, resolution)
    # A finished dataset resumes to nothing.
    again = generate_dataset(out, settings, RESOLUTIONS, sequences, workers=0, progress=False)
    assert all(t["computed"] == 0 for t in again.tasks)


def test_damaged_chunk_is_verified_and_redone(tmp_path, straight, settings):
    from physface.sim.dataset import generate_dataset
    from physface.sim.dataset_format import file_sha256
    from physface.sim.dataset_tasks import Interrupted

    out = tmp_path / "damaged"
    with pytest.raises(Interrupted):
        generate_dataset(
            out, settings, ("lr",), ("fear",), workers=0, progress=False, interrupt_after=3
        )
    chunk = out / "fear" / "lr.parts" / "chunk_00000.npz"
    chunk.write_bytes(chunk.read_bytes()[:-100])  # truncated by a crash or a full disk
    run = generate_dataset(out, settings, ("lr",), ("fear",), workers=0, progress=False)
    assert run.tasks[0]["computed"] == FRAMES
    assert file_sha256(out / "fear" / "lr.npz") == file_sha256(straight / "fear" / "lr.npz")


def test_other_settings_are_refused(tmp_path, straight, settings):
    from dataclasses import replace

    from physface.sim.dataset import generate_dataset
    from physface.sim.errors import DataError

    out = tmp_path / "mixed"
    generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)
    with pytest.raises(DataError, match="seed"):
        generate_dataset(
            out, replace(settings, seed=7), ("lr",), ("pain",), workers=0, progress=False
        )


def test_a_theme_added_to_the_book_extends_the_dataset(tmp_path, straight, settings, monkeypatch):
    """A dataset made before a theme was added keeps its sequences byte for byte and gains
    the new one; a sequence whose controls changed is refused, not mixed."""
    import physface.sim.performances as performances
    from physface.sim.dataset import generate_dataset
    from physface.sim.errors import DataError

    out = tmp_path / "grown"
    monkeypatch.setattr(performances, "DATASET_THEMES", THEMES)
    generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)
    before = (out / "pain" / "controls.npz").read_bytes(), sorted((out / "pain").rglob("*"))
    names = [s["name"] for s in json.loads((out / "dataset.json").read_text())["sequences"]]
    assert "range_face" not in names
    monkeypatch.undo()
    generate_dataset(out, settings, ("lr",), ("range_face",), workers=0, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert [s["name"] for s in meta["sequences"]] == [*THEMES, *RANGE_THEMES, *GENERALISATION]
    assert (out / "pain" / "controls.npz").read_bytes() == before[0]
    assert sorted((out / "pain").rglob("*")) == before[1]
    assert (out / "range_face" / "controls.npz").exists()
    # the book changed under a sequence already there: refused
    original = performances.theme_performance

    def louder(name, *args, **kwargs):
        performance = original(name, *args, **kwargs)
        if name == "pain":
            performance.activations = np.clip(performance.activations * 1.5, 0, 1)
        return performance

    monkeypatch.setattr(performances, "theme_performance", louder)
    with pytest.raises(DataError, match="differs from what this code generates"):
        generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, straight, settings):
    from physface.sim.dataset import exclusive_folder, generate_dataset
    from physface.sim.errors import DataError

    out = tmp_path / "busy"
    out.mkdir()
    with exclusive_folder(out):
        with pytest.raises(DataError, match="Another dataset run"):
            generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)
    assert not (out / "pain").exists()
    generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)
    assert (out / "pain" / "lr.npz").is_file()


def test_an_orphaned_worker_stops_without_committing(tmp_path, straight, settings, monkeypatch):
    import os

    from physface.sim import dataset_tasks
    from physface.sim.dataset import generate_dataset

    out = tmp_path / "orphan"
    with pytest.raises(dataset_tasks.Interrupted):
        generate_dataset(
            out, settings, ("lr",), ("fear",), workers=0, progress=False, interrupt_after=3
        )
    manifest = (out / "fear" / "lr.json").read_bytes()
    parts = sorted(p.name for p in (out / "fear" / "lr.parts").iterdir())
    # As a pool worker whose parent has died: the process's parent is no longer the run.
    monkeypatch.setitem(dataset_tasks._PROCESS, "parent", os.getppid() + 1)
    with pytest.raises(dataset_tasks.Orphaned, match="has ended"):
        generate_dataset(out, settings, ("lr",), ("fear",), workers=0, progress=False)
    assert (out / "fear" / "lr.json").read_bytes() == manifest
    assert sorted(p.name for p in (out / "fear" / "lr.parts").iterdir()) == parts


def test_deadline_stops_cleanly(tmp_path, straight, settings):
    import time

    from physface.sim.dataset import generate_dataset
    from physface.sim.dataset_format import dataset_status, file_sha256, read_sequence

    out = tmp_path / "deadline"
    run = generate_dataset(
        out, settings, ("lr",), ("pain",), workers=0, progress=False, deadline=time.time() - 1
    )
    assert run.tasks[0]["computed"] == 0 and not run.tasks[0]["complete"]
    generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)
    rows = {(r["sequence"], r["resolution"]): r for r in dataset_status(out)}
    assert rows[("pain", "lr")]["complete"] and rows[("pain", "lr")]["done"] == FRAMES
    assert rows[("anger", "lr")]["done"] == 0 and not rows[("anger", "lr")]["complete"]
    reached = read_sequence(out, "pain", "lr")["converged"]
    assert rows[("pain", "lr")]["converged"] == int(reached.sum()) > 0
    assert rows[("anger", "lr")]["converged"] == 0
    assert file_sha256(out / "pain" / "lr.npz") == file_sha256(straight / "pain" / "lr.npz")


def test_lr_and_hr_simulate_the_stored_controls(straight, settings, book):
    """Each manifest names the controls file by its actual digest, the file holds the
    performance recomputed from the book, and both resolutions move the rigid parts by it."""
    from physface.sim.dataset_format import file_sha256, read_controls, read_sequence
    from physface.sim.face_model import load_face_model
    from physface.sim.rig import load_rig

    model = load_face_model()
    anatomy = load_rig("tiny").anatomy
    expected = {
        "amazement": theme_performance("amazement", FRAMES, settings.seed, book),
        "lip_spring": generalisation_performance(
            "lip_spring", model, anatomy, FRAMES, settings.seed, book
        ),
    }
    for name, performance in expected.items():
        digest = file_sha256(straight / name / "controls.npz")
        for resolution in RESOLUTIONS:
            manifest = json.loads((straight / name / f"{resolution}.json").read_text())
            assert manifest["controls_sha256"] == digest, (name, resolution)
        stored = read_controls(straight, name).to_arrays()
        for key, value in performance.to_arrays().items():
            assert np.array_equal(stored[key], value), (name, key)
        frames = [read_sequence(straight, name, r) for r in RESOLUTIONS]
        assert all(len(f["skin"]) == FRAMES for f in frames)
        if len(frames) == 2:  # rigid parts follow the same head and jaw in both
            with np.load(straight / "rest.npz") as rest:
                rigid = np.setdiff1d(np.arange(len(rest["neutral"])), rest["embedded_vertices"])
            assert np.abs(frames[0]["skin"][:, rigid] - frames[1]["skin"][:, rigid]).max() < 1e-5


def test_worker_processes_give_the_same_bytes(tmp_path, straight, settings):
    from physface.sim.dataset import generate_dataset
    from physface.sim.dataset_format import file_sha256

    out = tmp_path / "pool"
    sequences = ("amazement", "lip_spring")
    generate_dataset(out, settings, ("lr",), sequences, workers=2, progress=False)
    for name in sequences:
        assert file_sha256(out / name / "lr.npz") == file_sha256(straight / name / "lr.npz")


def _fake_hr(out, name: str, shift_cm: float) -> None:
    """An hr.npz for a sequence: the LR skin with its embedded vertices moved by ``shift_cm``
    along +x (a known embedded error), committed by its manifest."""
    from physface.sim.dataset_format import read_npz, write_npz

    frames = read_npz(out / name / "lr.npz")
    frames.pop("volume")
    embedded = read_npz(out / "rest.npz")["embedded_vertices"]
    frames["skin"][:, embedded, 0] += np.float32(shift_cm)
    manifest = json.loads((out / name / "lr.json").read_text())
    manifest.update(resolution="hr", file="hr.npz", sha256=write_npz(out / name / "hr.npz", frames))
    (out / name / "hr.json").write_text(json.dumps(manifest))


def test_report_table_plots_and_renders(tmp_path, straight, blender):
    import shutil
    import zlib

    from physface.cli.dataset_report import write_report

    data = tmp_path / "data"
    data.mkdir()
    for item in ("dataset.json", "rest.npz"):
        shutil.copy(straight / item, data / item)
    for name in ("anger", "fear"):
        shutil.copytree(straight / name, data / name)
        _fake_hr(data, name, 0.05 if name == "anger" else 0.1)
    report = write_report(data, tmp_path / "report", frames_per_sequence=1, resolution=96)
    rows = {row["sequence"]: row for row in report["table"]}
    assert set(rows) == {"anger", "fear", "themes", "anger+fear"}  # no HR frames, no row
    assert rows["anger"]["mean"] == pytest.approx(0.5, abs=1e-3)  # mm
    assert rows["fear"]["max_vertex"] == pytest.approx(1.0, abs=1e-3)
    assert rows["anger+fear"]["mean"] == pytest.approx(0.75, abs=1e-3)
    assert rows["anger"]["frames"] == FRAMES
    # The fake HR skin is the LR skin shifted rigidly: the same edges are stretched in both.
    stretch = report["stretched_skin_edges"]["anger"]
    assert stretch["lr>2x"] == stretch["hr>2x"] and stretch["lr>5x"] == stretch["hr>5x"]
    box = report["bounding_boxes_mm"]["face region"]
    assert 150 < box[0] < 220 and 200 < box[1] < 320  # a head-sized face, in mm
    for path in report["plots"]:  # valid PNGs: signature, IHDR, and IDAT that inflates
        data_bytes = open(path, "rb").read()
        assert data_bytes[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = np.frombuffer(data_bytes[16:24], ">u4")
        start = data_bytes.index(b"IDAT") + 4
        length = int(np.frombuffer(data_bytes[start - 8 : start - 4], ">u4")[0])
        pixels = zlib.decompress(data_bytes[start : start + length])
        assert len(pixels) == height * (1 + 3 * width)
    assert len(report["sheets"]) == 2 and all(
        open(p, "rb").read(4) == b"\x89PNG" for p in report["sheets"]
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("chunk_frames", 0),
        ("chunk_frames", 2.5),
        ("frames", 0),
        ("seed", -1),
        ("variants", 0),
        ("max_iterations", 0),
        ("tolerance", 0.0),
        ("tolerance", float("nan")),
        ("tolerance", "1e-4"),
        ("preset", ""),
    ],
)
def test_bad_settings_are_refused_on_construction(field, value):
    from physface.sim.dataset import DatasetSettings, SettingsError

    with pytest.raises(SettingsError, match=field):
        DatasetSettings(**{field: value})


@pytest.mark.parametrize(
    "request_kwargs, message",
    [
        ({"sequences": ("angr",)}, "Unknown sequences"),
        ({"resolutions": ("mr",)}, "lr and/or hr"),
        ({"workers": -1}, "workers"),
        ({"preset": "huge"}, "Unknown rig preset"),
    ],
)
def test_a_request_that_cannot_work_writes_nothing(tmp_path, settings, request_kwargs, message):
    from dataclasses import replace

    from physface.sim.dataset import generate_dataset
    from physface.sim.errors import PhysFaceError

    kwargs = dict(request_kwargs)
    chosen = replace(settings, preset=kwargs.pop("preset")) if "preset" in kwargs else settings
    out = tmp_path / "never"
    with pytest.raises(PhysFaceError, match=message):
        generate_dataset(out, chosen, progress=False, **kwargs)
    assert not out.exists()


def test_a_file_as_the_dataset_folder_is_refused(tmp_path, settings):
    from physface.sim.dataset import generate_dataset
    from physface.sim.errors import DataError

    out = tmp_path / "notes.txt"
    out.write_text("mine")
    with pytest.raises(DataError, match="is a file"):
        generate_dataset(out, settings, ("lr",), ("pain",), workers=0, progress=False)
    assert out.read_text() == "mine"


def test_the_format_module_reads_without_warp_scipy_or_the_simulator(straight):
    """Training imports the readers: they must not pull in Warp, scipy or the simulator."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from physface.sim.dataset_format import read_dataset, read_sequence, dataset_status\n"
        f"meta = read_dataset({str(straight)!r})\n"
        f"skin = read_sequence({str(straight)!r}, 'anger', 'lr')['skin']\n"
        f"rows = dataset_status({str(straight)!r})\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('warp', 'scipy', 'torch')]\n"
        "heavy += [m for m in sys.modules\n"
        "          if m.endswith(('simulator', 'sim.dataset', 'sim.dataset_tasks'))]\n"
        "print(skin.shape[0], len(rows), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    sequences = len(THEMES) + len(RANGE_THEMES) + len(GENERALISATION)
    assert out.stdout.split() == [str(FRAMES), str(sequences * len(RESOLUTIONS)), "[]"]


def test_workers_use_the_data_folder_they_were_given(tmp_path, straight, settings, monkeypatch):
    """With PHYSFACE_DATA pointing nowhere, a run given the data folder must still work in
    its worker processes (they inherit the variable): nothing there may fall back to the
    default face model; the frames are those of the straight run."""
    from physface.sim.data_paths import find_data_folder
    from physface.sim.dataset import generate_dataset
    from physface.sim.dataset_format import file_sha256

    data = str(find_data_folder().root)
    monkeypatch.setenv("PHYSFACE_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "given"
    sequences = ("pain", "fear")
    generate_dataset(out, settings, ("lr",), sequences, workers=2, progress=False, data_folder=data)
    for name in sequences:
        assert file_sha256(out / name / "lr.npz") == file_sha256(straight / name / "lr.npz")
