"""The paired dataset: the same controls simulated on the LR lattice and the HR mesh.

Park et al. 2024 §4: per sequence (four themes, and the §5.3 sequences beyond the training
space) the controls are generated once and simulated at each resolution; the skin of every
frame, the LR volume, the solver residuals and the metadata go to a folder of .npz and
JSON readable with numpy alone (layout and schema: README "Dataset").

Generation spreads the (sequence, resolution) tasks over processes ('spawn'; each worker
loads the rig from the cache and runs Warp on the CPU) and survives interruption: frames
are written in chunks, each chunk atomically, followed by a checkpoint of the simulator
state after its last frame and a manifest that commits both. A resumed run verifies the
committed chunks by SHA-256, warm-starts from the checkpoint and produces the same bytes
as an uninterrupted run; a finished sequence is joined into one file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import time
import traceback
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cache import atomic_path, cache_root, content_key
from .errors import DataError

FORMAT = "physface-dataset/1"
RESOLUTIONS = ("lr", "hr")
TRAINING_TOLERANCE = 2e-4  # as simulator.TRAINING_TOLERANCE, without importing Warp here
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SIMULATION_SOURCES = ("simulator.py", "solver_kernels.py", "controls.py")


@dataclass(frozen=True)
class DatasetSettings:
    """What changes the data: rig preset, seed and variants per theme, an optional length
    for every sequence (None: each sequence's own), and the solver's tolerance (relative
    residual, see simulator) and iteration cap. ``chunk_frames`` only sets how often a run
    commits (the unit of resume), not the data."""

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

    def identity(self) -> dict:
        values = asdict(self)
        values.pop("chunk_frames")
        return values


# --- files ---------------------------------------------------------------------------------


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write an uncompressed .npz atomically with fixed timestamps, so the same arrays give
    the same bytes; returns the file's SHA-256."""
    with atomic_path(Path(path)) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_DATE), buffer.getvalue())
        digest = file_sha256(tmp)
    return digest


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


def write_json(path: Path, value) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- reading (numpy and json only; README "Dataset") -----------------------------------------


def read_dataset(path: str | Path) -> dict:
    """The folder's ``dataset.json``."""
    meta = _read_json(Path(path) / "dataset.json")
    if meta is None or meta.get("format") != FORMAT:
        raise DataError(
            f"{path} holds no PhysFace dataset ({FORMAT}); generate one with "
            "`python -m physface dataset --out DIR`."
        )
    return meta


def read_sequence(path: str | Path, name: str, resolution: str, partial: bool = True) -> dict:
    """Frames of one sequence at one resolution: skin (F, V, 3) float32 cm, residual (F,),
    iterations (F,), converged (F,), penetration_cm (F,), and for LR volume (F, N, 3).
    A sequence still being generated gives its committed frames when ``partial``."""
    folder = Path(path) / name
    manifest = _read_json(folder / f"{resolution}.json")
    if manifest is None:
        raise DataError(f"No {resolution.upper()} frames of {name!r} in {path}.")
    if manifest.get("complete"):
        return read_npz(folder / manifest["file"])
    if not partial or not manifest["chunks"]:
        raise DataError(f"The {resolution.upper()} frames of {name!r} are not finished.")
    parts = [read_npz(folder / chunk["file"]) for chunk in manifest["chunks"]]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def read_controls(path: str | Path, name: str):
    """The sequence's controls as a Performance (see performances.Performance)."""
    from .performances import Performance

    return Performance.from_arrays(name, read_npz(Path(path) / name / "controls.npz"))


# --- planning ------------------------------------------------------------------------------


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
    parts = [(here / name).read_bytes().hex() for name in _SIMULATION_SOURCES]
    return content_key(*parts, np.__version__, scipy.__version__, warp.config.version)


def _rig_file(rig) -> Path:
    return cache_root() / "rigs" / f"{rig.key}.npz"


# --- one (sequence, resolution) task --------------------------------------------------------


class Interrupted(Exception):
    """Raised by the test hook ``interrupt_after``: a run killed between two commits."""


class Orphaned(Exception):
    """A worker whose run has ended (its parent process died): it must not commit."""


@dataclass(frozen=True)
class Task:
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


_PROCESS: dict = {"rigs": {}, "simulators": {}, "queue": None, "parent": None}


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
    from .rig import load_rig

    key = (task.preset, task.with_hr, task.data_folder)
    if key not in _PROCESS["rigs"]:
        _PROCESS["rigs"][key] = load_rig(task.preset, task.data_folder, with_hr=task.with_hr)
        _PROCESS["simulators"].clear()
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


def forget_process_cache() -> None:
    """Drop this process's cached rigs and simulators (tests: a fresh worker)."""
    _PROCESS["rigs"].clear()
    _PROCESS["simulators"].clear()
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
    manifest = _read_json(folder / f"{task.resolution}.json")
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


def _frame_record(simulator, result, resolution: str) -> dict[str, np.ndarray]:
    record = {
        "skin": simulator.ict_positions(result).astype(np.float32),
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


def _tidy_parts(folder: Path, parts: Path, keep: set[str]) -> None:
    """Remove files in the parts folder that the manifest does not reference."""
    if parts.is_dir():
        for path in parts.iterdir():
            if path.relative_to(folder).as_posix() not in keep:
                path.unlink(missing_ok=True)


def _mean_seconds(manifest: dict, start: int, stop: int) -> float | None:
    """Mean simulation seconds per frame over [start, stop), without the cold frames."""
    cold = set(manifest.get("cold_frames", []))
    seconds = [s for f, s in enumerate(manifest["seconds"][start:stop], start) if f not in cold]
    return float(np.mean(seconds)) if seconds else None


def run_task(
    task: Task, progress=None, deadline: float | None = None, interrupt_after: int | None = None
) -> dict:
    """Simulate one sequence at one resolution from where it stopped; returns a summary
    (frames computed now, seconds per frame, complete or not). ``progress(n)`` is called
    per frame; past ``deadline`` (time.time()) the task stops after its current chunk;
    ``interrupt_after`` frames (tests) raises Interrupted before the chunk is written."""
    folder = Path(task.out_dir) / task.sequence
    parts = folder / f"{task.resolution}.parts"
    manifest_path = folder / f"{task.resolution}.json"
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
    keep = {c["file"] for c in manifest["chunks"]}
    if manifest["checkpoint"]:
        keep.add(manifest["checkpoint"]["file"])
    _tidy_parts(folder, parts, keep)
    start = manifest["chunks"][-1]["stop"] if manifest["chunks"] else 0
    if deadline is not None and time.time() > deadline:
        summary["done"] = start
        return summary
    performance = read_controls(task.out_dir, task.sequence)
    simulator = _simulator_for(task, performance)
    if start:
        simulator.set_state(read_npz(folder / manifest["checkpoint"]["file"]))
    chunk = int(manifest["chunk_frames"])
    frame = start
    while frame < task.frames:
        if deadline is not None and time.time() > deadline:
            break
        stop = min(frame + chunk, task.frames)
        records = []
        for f in range(frame, stop):
            check_parent()
            clock = time.perf_counter()
            result = simulator.step(performance.controls(f))
            records.append(_frame_record(simulator, result, task.resolution))
            manifest["seconds"].append(round(time.perf_counter() - clock, 4))
            if not _PROCESS.get("warm"):  # this process's first step also loaded Warp's kernels
                manifest["cold_frames"].append(f)
                _PROCESS["warm"] = True
            manifest["warnings"] += len(result.warnings)
            summary["computed"] += 1
            if progress is not None:
                progress(1)
            if interrupt_after is not None and summary["computed"] >= interrupt_after:
                raise Interrupted(f"{task.sequence} {task.resolution} after frame {f}")
        check_parent()
        name = f"{task.resolution}.parts/chunk_{frame:05d}.npz"
        digest = write_npz(folder / name, _stack(records))
        checkpoint = f"{task.resolution}.parts/checkpoint_{stop:05d}.npz"
        checkpoint_digest = write_npz(folder / checkpoint, simulator.state())
        manifest["chunks"].append({"file": name, "start": frame, "stop": stop, "sha256": digest})
        manifest["checkpoint"] = {"file": checkpoint, "frame": stop, "sha256": checkpoint_digest}
        write_json(manifest_path, manifest)  # the commit
        _tidy_parts(folder, parts, {c["file"] for c in manifest["chunks"]} | {checkpoint})
        frame = stop
    summary["seconds_per_frame"] = _mean_seconds(manifest, start, frame)
    if frame < task.frames:
        summary["done"] = frame
        return summary
    joined = [read_npz(folder / c["file"]) for c in manifest["chunks"]]
    final = f"{task.resolution}.npz"
    manifest["sha256"] = write_npz(
        folder / final, {key: np.concatenate([j[key] for j in joined]) for key in joined[0]}
    )
    manifest.update(complete=True, file=final, chunks=[], checkpoint=None)
    write_json(manifest_path, manifest)
    shutil.rmtree(parts, ignore_errors=True)
    summary.update(complete=True, done=frame)
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
            "error": f"{type(error).__name__}: {error}\n{traceback.format_exc()}",
        }


def _worker_init(queue, parent: int) -> None:
    import warp as wp

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


def _dataset_rig(preset: str, data_folder, need_hr: bool):
    """The full rig (LR and HR: one rig key per dataset, whichever resolutions a run asks
    for); the LR-only rig only where the HR mesh cannot be built and only LR is asked for."""
    from importlib.util import find_spec

    from .rig import load_rig

    if find_spec(f"{__package__}.hr_mesh") is None and not need_hr:
        return load_rig(preset, data_folder, with_hr=False)
    try:
        return load_rig(preset, data_folder, with_hr=True)
    except ImportError as error:
        raise DataError(f"The HR mesh cannot be built here ({error}).") from error


@dataclass
class DatasetRun:
    """What one call of ``generate_dataset`` did: per task summaries, wall seconds."""

    out_dir: Path
    meta: dict
    tasks: list[dict]
    seconds: float


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
    most one per task; 0 or 1: in this process). A folder started with other settings,
    rig or code is refused. ``interrupt_after`` (tests, in-process) stops the run like a
    kill after that many frames."""
    import warp as wp

    from .face_model import load_face_model

    clock = time.perf_counter()
    out_dir = Path(out_dir)
    resolutions = tuple(resolutions)
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown or not resolutions:
        raise DataError(f"Resolutions {unknown or resolutions}: use lr and/or hr.")
    wp.config.quiet = True
    rig = _dataset_rig(settings.preset, data_folder, "hr" in resolutions)
    with_hr = rig.hr is not None
    model = load_face_model(data_folder)
    performances = plan_performances(settings, model, rig.anatomy)
    names = [p.name for p in performances]
    chosen = list(sequences) if sequences else names
    missing = [s for s in chosen if s not in names]
    if missing:
        raise DataError(f"Unknown sequences {missing}; the dataset has {', '.join(names)}.")
    code_key = simulation_code_key()
    meta = _dataset_meta(settings, rig, model, performances, code_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(out_dir):
        old = _read_json(out_dir / "dataset.json")
        if old is not None:
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
        _check_or_write(out_dir / "rest.npz", _rest_arrays(rig, model))
        tasks = []
        for performance in performances:
            if performance.name not in chosen:
                continue
            controls_digest = _check_or_write(
                out_dir / performance.name / "controls.npz", performance.to_arrays()
            )
            for resolution in resolutions:
                tasks.append(
                    Task(
                        str(out_dir),
                        performance.name,
                        resolution,
                        performance.frames,
                        settings.preset,
                        with_hr,
                        rig.key,
                        code_key,
                        controls_digest,
                        settings.tolerance,
                        settings.max_iterations,
                        settings.chunk_frames,
                        data_folder,
                    )
                )
        if old is None:
            write_json(out_dir / "dataset.json", meta)
        # LR first (minutes for all of it, so a run cut short has every LR sequence), then HR
        # longest first so that the last tasks to finish are short.
        tasks.sort(key=lambda t: (t.resolution == "hr", -t.frames))
        todo = []
        for task in tasks:
            manifest = _read_json(out_dir / task.sequence / f"{task.resolution}.json")
            done = 0
            if manifest and manifest.get("complete"):
                done = task.frames
            elif manifest:
                done = manifest["chunks"][-1]["stop"] if manifest.get("chunks") else 0
            todo.append((task, task.frames - done))
        total = sum(left for _, left in todo)
        workers = (os.cpu_count() or 1) if workers is None else workers
        workers = max(0, min(workers, sum(1 for _, left in todo if left)))
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="dataset", disable=not progress, smoothing=0.05)
        try:
            if workers <= 1:
                summaries = []
                for task, _ in todo:
                    bar.set_postfix_str(f"{task.sequence} {task.resolution}")
                    summaries.append(run_task(task, bar.update, deadline, interrupt_after))
            else:
                summaries = _run_pool([task for task, _ in todo], workers, bar, deadline)
        finally:
            bar.close()
        failed = [s for s in summaries if "error" in s]
        if failed:
            details = "\n".join(f"{s['sequence']} {s['resolution']}: {s['error']}" for s in failed)
            raise DataError(f"{len(failed)} task(s) failed; the others are kept.\n{details}")
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
    with pool:
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


def dataset_status(out_dir: str | Path) -> list[dict]:
    """Per sequence and resolution of the folder's rig (LR, and HR when it has one):
    frames committed, total, complete, mean seconds per frame (from the manifests)."""
    out_dir = Path(out_dir)
    meta = read_dataset(out_dir)
    rows = []
    for sequence in meta["sequences"]:
        for resolution in (r for r in RESOLUTIONS if r in meta["meshes"]):
            manifest = _read_json(out_dir / sequence["name"] / f"{resolution}.json") or {}
            done = 0
            if manifest.get("complete"):
                done = sequence["frames"]
            elif manifest.get("chunks"):
                done = manifest["chunks"][-1]["stop"]
            rows.append(
                {
                    "sequence": sequence["name"],
                    "resolution": resolution,
                    "done": done,
                    "frames": sequence["frames"],
                    "complete": bool(manifest.get("complete")),
                    "seconds_per_frame": _mean_seconds(manifest, 0, done) if manifest else None,
                    "warnings": manifest.get("warnings", 0),
                }
            )
    return rows


def machine_description() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, {platform.system()}"


__all__ = [
    "FORMAT",
    "RESOLUTIONS",
    "DatasetRun",
    "DatasetSettings",
    "Interrupted",
    "Task",
    "dataset_status",
    "generate_dataset",
    "plan_performances",
    "read_controls",
    "read_dataset",
    "read_npz",
    "read_sequence",
    "run_task",
    "write_npz",
]
