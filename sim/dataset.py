"""Generation of the paired dataset: the same controls simulated on the LR lattice and the
HR mesh (Park et al. 2024 §4). The format and its readers are ``dataset_format`` (numpy
only); this module plans the sequences, runs the simulator and writes the files.

Per sequence (four themes, and the §5.3 sequences beyond the training space) the controls
are generated once and simulated at each resolution. Generation spreads the (sequence,
resolution) tasks over processes ('spawn'; each worker loads the rig from the cache, with
the run's data folder, and runs Warp on the CPU) and survives interruption: frames are
written in chunks, each chunk atomically, followed by a checkpoint of the simulator state
after its last frame and a manifest that commits both. A resumed run verifies the
committed chunks by SHA-256, warm-starts from the checkpoint and produces the same bytes
as an uninterrupted run; a finished sequence is joined into one file.
"""

from __future__ import annotations

import math
import numbers
import os
import platform
import shutil
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cache import cache_root, content_key
from .dataset_format import (
    FORMAT,
    RESOLUTIONS,
    file_sha256,
    frames_done,
    manifest_path,
    mean_seconds,
    read_controls,
    read_json,
    read_npz,
    write_json,
    write_npz,
)
from .errors import DataError, PhysFaceError
from .tolerances import TRAINING_TOLERANCE

# Sources whose change changes the simulated frames (a resumed run must not mix versions);
# files not present are skipped, so a module split keeps the key meaningful.
_SIMULATION_SOURCES = (
    "simulator.py",
    "solver_kernels.py",
    "controls.py",
    "contacts.py",
    "skin_stage.py",
)


class SettingsError(PhysFaceError, ValueError):
    """A dataset setting that cannot work (a chunk of 0 frames, a negative seed, …)."""


def _check_integer(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise SettingsError(
            f"The dataset setting {name} (--{name.replace('_', '-')}) must be a whole number "
            f"of at least {minimum}, not {value!r}."
        )


@dataclass(frozen=True)
class DatasetSettings:
    """What changes the data: rig preset, seed and variants per theme, an optional length
    for every sequence (None: each sequence's own), and the solver's tolerance (relative
    residual, see simulator) and iteration cap. ``chunk_frames`` only sets how often a run
    commits (the unit of resume), not the data. Every field is checked on construction,
    so a bad value is refused before anything is written."""

    preset: str = "default"
    seed: int = 0
    variants: int = 1
    frames: int | None = None
    tolerance: float = TRAINING_TOLERANCE
    # The HR solve's max-node residual stalls in a few frames (strong brow lowering: the
    # glabella drifts slowly under corrugator + procerus) while the skin has settled: at the
    # slowest frame measured (anger 14), 100 iterations put the skin within 0.001 mm mean,
    # 0.02 mm p99 of 400. Each frame's residual and iteration count are stored.
    max_iterations: int = 100
    chunk_frames: int = 8

    def __post_init__(self):
        if not isinstance(self.preset, str) or not self.preset:
            raise SettingsError(
                f"The dataset setting preset (--preset) must be a name, not {self.preset!r}."
            )
        _check_integer("seed", self.seed, 0)
        _check_integer("variants", self.variants, 1)
        if self.frames is not None:
            _check_integer("frames", self.frames, 1)
        _check_integer("max_iterations", self.max_iterations, 1)
        _check_integer("chunk_frames", self.chunk_frames, 1)
        tolerance = self.tolerance
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, numbers.Real)
            or not math.isfinite(tolerance)
            or not 0.0 < tolerance < 1.0
        ):
            raise SettingsError(
                "The dataset setting tolerance (--tolerance, a relative solver residual) must "
                f"be a number between 0 and 1, such as {TRAINING_TOLERANCE:g}, not {tolerance!r}."
            )

    def identity(self) -> dict:
        """The settings that the data depends on (all but ``chunk_frames``)."""
        values = asdict(self)
        values.pop("chunk_frames")
        return values


# --- planning ------------------------------------------------------------------------------


def plan_names(settings: DatasetSettings) -> list[str]:
    """The names of the dataset's sequences in order (no rig or face model needed)."""
    from .performances import GENERALISATION, THEMES

    names = [
        theme if variant == 0 else f"{theme}_v{variant}"
        for theme in THEMES
        for variant in range(settings.variants)
    ]
    return names + list(GENERALISATION)


def plan_performances(settings: DatasetSettings, model, anatomy, book=None) -> list:
    """The dataset's sequences: each theme (``variants`` seeds, named ``theme`` for the
    first and ``theme_vK`` after), then the §5.3 sequences."""
    from .performances import (
        GENERALISATION,
        THEMES,
        generalisation_performance,
        load_performance_book,
        theme_performance,
    )

    book = book or load_performance_book()
    performances = []
    for theme in THEMES:
        for variant in range(settings.variants):
            performance = theme_performance(theme, settings.frames, settings.seed + variant, book)
            if variant:
                performance.name = f"{theme}_v{variant}"
            performances.append(performance)
    for name in GENERALISATION:
        performances.append(
            generalisation_performance(name, model, anatomy, settings.frames, settings.seed, book)
        )
    return performances


def simulation_code_key() -> str:
    """Hash of the simulator sources and the numeric libraries' versions: a resumed run
    must simulate with the same code as the frames already written."""
    import scipy
    import warp

    here = Path(__file__).parent
    parts = [
        (here / name).read_bytes().hex() for name in _SIMULATION_SOURCES if (here / name).is_file()
    ]
    return content_key(*parts, np.__version__, scipy.__version__, warp.config.version)


def _rig_file(rig) -> Path:
    return cache_root() / "rigs" / f"{rig.key}.npz"


# --- one (sequence, resolution) task --------------------------------------------------------


class Interrupted(Exception):
    """Raised by the test hook ``interrupt_after``: a run killed between two commits."""


class Orphaned(Exception):
    """A worker whose run has ended (its parent process died): it must not commit."""


@dataclass(frozen=True, kw_only=True)
class Task:
    """One sequence at one resolution, with everything a worker process needs to simulate
    it exactly as the run that planned it (the rig, code and controls it must find)."""

    out_dir: str
    sequence: str
    resolution: str
    frames: int
    preset: str
    with_hr: bool
    rig_key: str
    code_key: str
    controls_sha256: str
    tolerance: float
    max_iterations: int
    chunk_frames: int
    data_folder: str | None = None


_PROCESS: dict = {"rigs": {}, "simulators": {}, "stages": {}, "queue": None, "parent": None}


def check_parent() -> None:
    """In a worker: raise Orphaned once the run that started it has died (a killed parent
    leaves its pool running; an orphan committing into a folder that a new run resumes
    would delete that run's chunks)."""
    parent = _PROCESS["parent"]
    if parent is not None and os.getppid() != parent:
        raise Orphaned(f"the dataset run (pid {parent}) that started this worker has ended")


@contextmanager
def exclusive_folder(out_dir: Path):
    """Hold ``out_dir/.lock`` for one run; a second run on the folder is refused."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): one run per folder is on the user
        yield
        return
    path = Path(out_dir) / ".lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise DataError(
                f"Another dataset run (pid {owner}) is writing {out_dir}; let it finish or "
                "stop it first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _rig_for(task: Task):
    """The task's rig, loaded once per process from the run's data folder, checked against
    the rig and code the run started with."""
    from .rig import load_rig

    key = (task.preset, task.with_hr, task.data_folder)
    if key not in _PROCESS["rigs"]:
        _PROCESS["rigs"][key] = load_rig(task.preset, task.data_folder, with_hr=task.with_hr)
        _PROCESS["simulators"].clear()
        _PROCESS["stages"].clear()
    rig = _PROCESS["rigs"][key]
    if _PROCESS.setdefault("code_key", simulation_code_key()) != task.code_key:
        raise DataError(
            "The simulator code changed while the dataset was being generated, and frames of "
            "two versions must not mix; generate into a new folder."
        )
    if rig.key != task.rig_key:
        raise DataError(
            f"The cached rig is {rig.key}, the dataset was started with "
            f"{task.rig_key}; the rig code changed during the run."
        )
    return rig


def _simulator_for(task: Task, performance):
    """A simulator for the task, reused within a process (same rig, resolution, dynamics,
    time step and settings), reset to rest."""
    from .simulator import Simulator

    rig = _rig_for(task)
    key = (
        task.rig_key,
        task.resolution,
        performance.dynamics,
        performance.fps,
        task.tolerance,
        task.max_iterations,
    )
    simulator = _PROCESS["simulators"].get(key)
    if simulator is None:
        simulator = Simulator(
            rig,
            task.resolution,
            dynamics=performance.dynamics,
            time_step=1.0 / performance.fps,
            tolerance=task.tolerance,
            max_iterations=task.max_iterations,
        )
        _PROCESS["simulators"][key] = simulator
    simulator.reset()
    return simulator


def _skin_stage_for(task: Task):
    """The embedded skin stage of the task's rig and resolution, one per process."""
    from .skin_stage import EmbeddedSkinStage

    key = (task.rig_key, task.resolution)
    if key not in _PROCESS["stages"]:
        _PROCESS["stages"][key] = EmbeddedSkinStage(_rig_for(task), task.resolution)
    return _PROCESS["stages"][key]


def forget_process_cache() -> None:
    """Drop this process's cached rigs, simulators and skin stages (tests: a fresh worker)."""
    _PROCESS["rigs"].clear()
    _PROCESS["simulators"].clear()
    _PROCESS["stages"].clear()
    _PROCESS.pop("code_key", None)


def _new_manifest(task: Task) -> dict:
    return {
        "format": FORMAT,
        "sequence": task.sequence,
        "resolution": task.resolution,
        "frames": task.frames,
        "chunk_frames": task.chunk_frames,
        "rig_key": task.rig_key,
        "code_key": task.code_key,
        "controls_sha256": task.controls_sha256,
        "chunks": [],
        "checkpoint": None,
        "complete": False,
        "file": None,
        "sha256": None,
        "seconds": [],
        "cold_frames": [],
        "warnings": 0,
    }


def _committed(folder: Path, task: Task) -> tuple[dict, str]:
    """The manifest to continue from, its committed chunks verified: (manifest, note).
    Chunks that fail verification and everything after them are dropped; without a
    checkpoint at the end of the verified chunks the task starts over."""
    manifest = read_json(folder / f"{task.resolution}.json")
    fresh = _new_manifest(task)
    if manifest is None:
        return fresh, ""
    same = all(
        manifest.get(k) == fresh[k]
        for k in ("format", "frames", "rig_key", "code_key", "controls_sha256")
    )
    if not same:
        return fresh, "its manifest belongs to other controls or code; starting over"
    if manifest.get("complete"):
        final = folder / manifest["file"]
        if final.is_file() and file_sha256(final) == manifest["sha256"]:
            return manifest, "complete"
        manifest["complete"], manifest["file"], manifest["sha256"] = False, None, None
    good = []
    for chunk in manifest["chunks"]:
        path = folder / chunk["file"]
        if not path.is_file() or file_sha256(path) != chunk["sha256"]:
            break
        good.append(chunk)
    end = good[-1]["stop"] if good else 0
    checkpoint = manifest.get("checkpoint")
    if end and not (
        checkpoint
        and checkpoint["frame"] == end
        and (folder / checkpoint["file"]).is_file()
        and file_sha256(folder / checkpoint["file"]) == checkpoint["sha256"]
    ):
        return fresh, "its checkpoint is missing or damaged; starting over"
    note = "" if len(good) == len(manifest["chunks"]) else "a damaged chunk was dropped"
    manifest["chunks"] = good
    manifest["seconds"] = manifest["seconds"][:end]
    manifest["cold_frames"] = [f for f in manifest.get("cold_frames", []) if f < end]
    if not end:
        manifest["checkpoint"] = None
    return manifest, note


def _frame_record(stage, result, resolution: str) -> dict[str, np.ndarray]:
    """One frame's arrays: every ICT vertex from the skin stage, the solver's report, and
    for LR the volume."""
    skin = stage(result.volume_positions, result.head_transform, result.jaw_transform)
    record = {
        "skin": np.array(skin, dtype=np.float32),  # a copy: the stage reuses its buffer
        "residual": np.float32(result.residual),
        "iterations": np.int32(result.iterations),
        "converged": np.bool_(result.converged),
        "penetration_cm": np.float32(getattr(result, "max_penetration_cm", 0.0)),
    }
    if resolution == "lr":
        record["volume"] = result.volume_positions.astype(np.float32)
    return record


def _stack(records: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.stack([r[key] for r in records]) for key in records[0]}


def _tidy_parts(folder: Path, resolution: str, keep: set[str]) -> None:
    """Remove files in the parts folder that the manifest does not reference, and the
    temporary manifests of a killed write."""
    parts = folder / f"{resolution}.parts"
    if parts.is_dir():
        for path in parts.iterdir():
            if path.relative_to(folder).as_posix() not in keep:
                path.unlink(missing_ok=True)
    for path in folder.glob(f".{resolution}.json.*.tmp"):
        path.unlink(missing_ok=True)


def _referenced(manifest: dict) -> set[str]:
    keep = {c["file"] for c in manifest["chunks"]}
    if manifest["checkpoint"]:
        keep.add(manifest["checkpoint"]["file"])
    return keep


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() > deadline


class _Ticker:
    """Counts a task's frames: the summary, the progress callback and the test hook that
    stops the run like a kill after ``interrupt_after`` frames."""

    def __init__(self, task: Task, summary: dict, progress, interrupt_after: int | None):
        self.task, self.summary = task, summary
        self.progress, self.interrupt_after = progress, interrupt_after

    def __call__(self, frame: int) -> None:
        self.summary["computed"] += 1
        if self.progress is not None:
            self.progress(1)
        if self.interrupt_after is not None and self.summary["computed"] >= self.interrupt_after:
            raise Interrupted(f"{self.task.sequence} {self.task.resolution} after frame {frame}")


def _simulate(task, simulator, stage, performance, manifest, start, stop, tick) -> list[dict]:
    """Frames [start, stop): step, skin, and record timings and warnings in the manifest."""
    records = []
    for frame in range(start, stop):
        check_parent()
        clock = time.perf_counter()
        result = simulator.step(performance.controls(frame))
        records.append(_frame_record(stage, result, task.resolution))
        manifest["seconds"].append(round(time.perf_counter() - clock, 4))
        if not _PROCESS.get("warm"):  # this process's first step also loaded Warp's kernels
            manifest["cold_frames"].append(frame)
            _PROCESS["warm"] = True
        manifest["warnings"] += len(result.warnings)
        tick(frame)
    return records


def _commit_chunk(folder: Path, task: Task, manifest: dict, records, start, stop, simulator):
    """Write the chunk and the checkpoint after it, then commit both by the manifest."""
    check_parent()
    name = f"{task.resolution}.parts/chunk_{start:05d}.npz"
    digest = write_npz(folder / name, _stack(records))
    checkpoint = f"{task.resolution}.parts/checkpoint_{stop:05d}.npz"
    checkpoint_digest = write_npz(folder / checkpoint, simulator.state().to_arrays())
    manifest["chunks"].append({"file": name, "start": start, "stop": stop, "sha256": digest})
    manifest["checkpoint"] = {"file": checkpoint, "frame": stop, "sha256": checkpoint_digest}
    write_json(folder / f"{task.resolution}.json", manifest)  # the commit
    _tidy_parts(folder, task.resolution, _referenced(manifest))


def _join(folder: Path, task: Task, manifest: dict) -> None:
    """Join a finished task's chunks into one file, commit it and remove the parts."""
    joined = [read_npz(folder / c["file"]) for c in manifest["chunks"]]
    final = f"{task.resolution}.npz"
    manifest["sha256"] = write_npz(
        folder / final, {key: np.concatenate([j[key] for j in joined]) for key in joined[0]}
    )
    manifest.update(complete=True, file=final, chunks=[], checkpoint=None)
    write_json(folder / f"{task.resolution}.json", manifest)
    shutil.rmtree(folder / f"{task.resolution}.parts", ignore_errors=True)


def run_task(
    task: Task, progress=None, deadline: float | None = None, interrupt_after: int | None = None
) -> dict:
    """Simulate one sequence at one resolution from where it stopped; returns a summary
    (frames computed now, seconds per frame, complete or not). ``progress(n)`` is called
    per frame; past ``deadline`` (time.time()) the task stops after its current chunk;
    ``interrupt_after`` frames (tests) raises Interrupted before the chunk is written."""
    folder = Path(task.out_dir) / task.sequence
    manifest, note = _committed(folder, task)
    summary = {
        "sequence": task.sequence,
        "resolution": task.resolution,
        "note": note,
        "computed": 0,
        "complete": False,
    }
    if note == "complete":
        summary.update(complete=True, note="")
        return summary
    _tidy_parts(folder, task.resolution, _referenced(manifest))
    start = frame = frames_done(manifest, task.frames)
    summary["done"] = start
    if _past(deadline):
        return summary
    performance = read_controls(task.out_dir, task.sequence)
    simulator = _simulator_for(task, performance)
    stage = _skin_stage_for(task)
    if start:
        from .simulator import SimulatorState

        checkpoint = read_npz(folder / manifest["checkpoint"]["file"])
        simulator.set_state(SimulatorState.from_arrays(checkpoint))
    tick = _Ticker(task, summary, progress, interrupt_after)
    while frame < task.frames and not _past(deadline):
        stop = min(frame + int(manifest["chunk_frames"]), task.frames)
        records = _simulate(task, simulator, stage, performance, manifest, frame, stop, tick)
        _commit_chunk(folder, task, manifest, records, frame, stop, simulator)
        frame = summary["done"] = stop
    summary["seconds_per_frame"] = mean_seconds(manifest, start, frame)
    if frame == task.frames:
        _join(folder, task, manifest)
        summary["complete"] = True
    return summary


def _run_task_reporting(task: Task, deadline):
    """Worker entry: run a task, sending per-frame ticks to the parent's queue; errors come
    back as text so one failing sequence does not stop the others."""
    queue = _PROCESS["queue"]
    try:
        return run_task(task, (lambda n: queue.put(n)) if queue is not None else None, deadline)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises
        return {
            "sequence": task.sequence,
            "resolution": task.resolution,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }


def _worker_init(queue, parent: int) -> None:
    """Pool worker set-up: quiet Warp, the parent's tick queue and pid. Ctrl-C reaches the
    whole process group; the parent alone answers it (and ends the pool), so a worker
    ignores SIGINT instead of printing a traceback of its own."""
    import warp as wp

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wp.config.quiet = True
    _PROCESS["queue"] = queue
    _PROCESS["parent"] = parent


# --- the whole dataset -------------------------------------------------------------------------


def _dataset_meta(settings, rig, model, performances, code_key: str) -> dict:
    meshes = {"lr": rig.lr}
    if rig.hr is not None:
        meshes["hr"] = rig.hr
    return {
        "format": FORMAT,
        "preset": settings.preset,
        "rig_key": rig.key,
        "code_version": rig.key,
        "rig_sha256": file_sha256(_rig_file(rig)),
        "simulation_code": code_key,
        "settings": settings.identity(),
        "units": {
            "positions": "cm",
            "jaw": "opening deg, lateral mm, protrusion mm",
            "stiffness": "dyn/cm",
            "fps": "frames per second",
        },
        "vertex_count": int(model.vertex_count),
        "embedded_vertex_count": int(len(rig.lr_skin.vertices)),
        "meshes": {
            name: {"nodes": int(mesh.vertex_count), "elements": int(mesh.element_count)}
            for name, mesh in meshes.items()
        },
        "sequences": [
            {
                "name": p.name,
                "kind": p.kind,
                "theme": p.theme,
                "seed": p.seed,
                "frames": p.frames,
                "fps": p.fps,
                "dynamics": p.dynamics,
            }
            for p in performances
        ],
    }


def _rest_arrays(rig, model) -> dict[str, np.ndarray]:
    from .tissue import OUTER_SKIN_REGIONS

    skin = np.concatenate([model.region(r) for r in OUTER_SKIN_REGIONS])
    return {
        "neutral": model.neutral.astype(np.float32),
        "embedded_vertices": rig.lr_skin.vertices.astype(np.int32),
        "triangles": model.triangles().astype(np.int32),
        "skin_triangles": model.triangles(skin).astype(np.int32),
        "muscle_names": np.array(rig.muscle_names, dtype=str),
        "lr_rest": rig.lr.rest_positions.astype(np.float32),
        "lr_tets": rig.lr.tets.astype(np.int32),
    }


def _check_or_write(path: Path, arrays: dict) -> str:
    """Write a deterministic .npz, or check that the one there holds the same bytes."""
    buffer_path = path.with_name(f".{path.name}.check")
    digest = write_npz(buffer_path, arrays)
    if path.is_file():
        same = file_sha256(path) == digest
        buffer_path.unlink()
        if not same:
            raise DataError(
                f"{path} differs from what this code generates (the performances or the rig "
                "changed); generate into a new folder or delete the old one."
            )
    else:
        os.replace(buffer_path, path)
    return digest


def _dataset_rig(preset: str, data_folder):
    """The full rig (LR and HR): one rig key per dataset, whichever resolutions a run asks
    for, so LR and HR runs of one folder always agree."""
    from .rig import load_rig

    try:
        return load_rig(preset, data_folder, with_hr=True)
    except ImportError as error:
        raise DataError(
            f"The HR mesh cannot be built here ({error}); install the packages of "
            "requirements.txt (pytetwild)."
        ) from error


@dataclass
class DatasetRun:
    """What one call of ``generate_dataset`` did: per task summaries, wall seconds."""

    out_dir: Path
    meta: dict
    tasks: list[dict]
    seconds: float


def _check_request(out_dir: Path, settings, resolutions, sequences, workers) -> list[str]:
    """Refuse a request that cannot work before loading or writing anything; returns the
    chosen sequence names in plan order."""
    from .rig import PRESETS

    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(
            f"The dataset folder {out_dir} is a file; name a new folder or an existing dataset."
        )
    if settings.preset not in PRESETS:
        raise SettingsError(
            f"Unknown rig preset {settings.preset!r}; choose one of {', '.join(PRESETS)}."
        )
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown or not resolutions:
        raise SettingsError(f"Resolutions {unknown or list(resolutions)}: use lr and/or hr.")
    if workers is not None:
        _check_integer("workers", workers, 0)
    names = plan_names(settings)
    chosen = list(sequences) if sequences else names
    missing = [s for s in chosen if s not in names]
    if missing:
        raise SettingsError(f"Unknown sequences {missing}; the dataset has {', '.join(names)}.")
    return [name for name in names if name in chosen]


def _refuse_another_dataset(out_dir: Path, meta: dict) -> bool:
    """Refuse a folder holding a dataset made otherwise; True when the folder is new."""
    old = read_json(out_dir / "dataset.json")
    if old is None:
        return True
    changed = []
    for key, value in meta.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            changed += [f"{key}.{k}" for k in value if old[key].get(k) != value[k]]
        elif old.get(key) != value:
            changed.append(key)
    if changed:
        raise DataError(
            f"{out_dir} holds a dataset made with other {', '.join(changed)}; generate "
            "into a new folder, or delete the old one to start over."
        )
    return False


def _write_inputs(out_dir: Path, rig, model, performances, chosen, resolutions, common) -> list:
    """Write (or check) rest.npz and each chosen sequence's controls; one Task per chosen
    sequence and resolution. ``common`` holds the Task fields shared by all."""
    _check_or_write(out_dir / "rest.npz", _rest_arrays(rig, model))
    tasks = []
    for performance in performances:
        if performance.name not in chosen:
            continue
        controls_sha256 = _check_or_write(
            out_dir / performance.name / "controls.npz", performance.to_arrays()
        )
        for resolution in resolutions:
            tasks.append(
                Task(
                    sequence=performance.name,
                    resolution=resolution,
                    frames=performance.frames,
                    controls_sha256=controls_sha256,
                    **common,
                )
            )
    return tasks


def _ordered(tasks: list[Task]) -> list[Task]:
    """LR first (minutes for all of it, so a run cut short has every LR sequence), then HR
    longest first so that the last tasks to finish are short."""
    return sorted(tasks, key=lambda t: (t.resolution == "hr", -t.frames))


def _frames_left(task: Task) -> int:
    return task.frames - frames_done(
        read_json(manifest_path(task.out_dir, task.sequence, task.resolution)), task.frames
    )


def _run_tasks(tasks, workers, progress: bool, deadline, interrupt_after) -> list[dict]:
    """Run the tasks in this process (``workers`` ≤ 1) or on a pool, with a progress bar."""
    from tqdm import tqdm

    left = [_frames_left(task) for task in tasks]
    workers = (os.cpu_count() or 1) if workers is None else workers
    workers = max(0, min(workers, sum(1 for n in left if n)))
    bar = tqdm(total=sum(left), unit="frame", desc="dataset", disable=not progress, smoothing=0.05)
    try:
        if workers > 1:
            return _run_pool(tasks, workers, bar, deadline)
        summaries = []
        for task in tasks:
            bar.set_postfix_str(f"{task.sequence} {task.resolution}")
            summaries.append(run_task(task, bar.update, deadline, interrupt_after))
        return summaries
    finally:
        bar.close()


def _raise_failures(summaries: list[dict]) -> None:
    """One DataError for the tasks that failed: a line each first, then the tracebacks."""
    failed = [s for s in summaries if "error" in s]
    if failed:
        lines = "; ".join(f"{s['sequence']} {s['resolution']}: {s['error']}" for s in failed)
        details = "\n".join(s.get("traceback", "") for s in failed)
        raise DataError(f"{len(failed)} task(s) failed, the others are kept: {lines}\n{details}")


def generate_dataset(
    out_dir: str | Path,
    settings: DatasetSettings = DatasetSettings(),  # noqa: B008
    resolutions=RESOLUTIONS,
    sequences=None,
    workers: int | None = None,
    progress: bool = True,
    deadline: float | None = None,
    data_folder: str | None = None,
    interrupt_after: int | None = None,
) -> DatasetRun:
    """Generate (or resume) the dataset in ``out_dir``: every sequence of the plan (or the
    named ``sequences``) at each resolution. ``workers`` processes (None: one per core, at
    most one per task; 0 or 1: in this process). A request that cannot work is refused
    before anything is written; a folder started with other settings, rig or code is
    refused. ``interrupt_after`` (tests, in-process) stops the run like a kill after that
    many frames."""
    import warp as wp

    from .face_model import load_face_model

    clock = time.perf_counter()
    out_dir, resolutions = Path(out_dir), tuple(resolutions)
    chosen = _check_request(out_dir, settings, resolutions, sequences, workers)
    wp.config.quiet = True
    rig = _dataset_rig(settings.preset, data_folder)
    model = load_face_model(data_folder)
    performances = plan_performances(settings, model, rig.anatomy)
    code_key = simulation_code_key()
    meta = _dataset_meta(settings, rig, model, performances, code_key)
    common = {
        "out_dir": str(out_dir),
        "preset": settings.preset,
        "with_hr": rig.hr is not None,
        "rig_key": rig.key,
        "code_key": code_key,
        "tolerance": settings.tolerance,
        "max_iterations": settings.max_iterations,
        "chunk_frames": settings.chunk_frames,
        "data_folder": data_folder,  # as given: a DataSetting keeps its source for messages
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(out_dir):
        new = _refuse_another_dataset(out_dir, meta)
        tasks = _write_inputs(out_dir, rig, model, performances, chosen, resolutions, common)
        if new:
            write_json(out_dir / "dataset.json", meta)
        summaries = _run_tasks(_ordered(tasks), workers, progress, deadline, interrupt_after)
    _raise_failures(summaries)
    return DatasetRun(out_dir, meta, summaries, time.perf_counter() - clock)


def _run_pool(tasks: list[Task], workers: int, bar, deadline) -> list[dict]:
    """Run tasks on ``workers`` spawned processes; the bar advances per frame."""
    import multiprocessing as mp
    import queue as queue_module

    context = mp.get_context("spawn")
    ticks = context.Queue()
    one_thread = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in one_thread}
    os.environ.update(one_thread)  # inherited by the spawned workers
    try:
        pool = context.Pool(workers, initializer=_worker_init, initargs=(ticks, os.getpid()))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    with pool:  # leaving it (also by Ctrl-C) terminates the workers; commits are atomic
        pending = [pool.apply_async(_run_task_reporting, (task, deadline)) for task in tasks]
        while not all(p.ready() for p in pending):
            try:
                bar.update(ticks.get(timeout=0.5))
            except queue_module.Empty:
                pass
        while True:
            try:
                bar.update(ticks.get_nowait())
            except queue_module.Empty:
                break
        return [p.get() for p in pending]


def machine_description() -> str:
    """Host, architecture, core count and system, for timing reports."""
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, {platform.system()}"


__all__ = [
    "DatasetRun",
    "DatasetSettings",
    "Interrupted",
    "Orphaned",
    "SettingsError",
    "Task",
    "exclusive_folder",
    "forget_process_cache",
    "generate_dataset",
    "machine_description",
    "plan_names",
    "plan_performances",
    "run_task",
    "simulation_code_key",
]
