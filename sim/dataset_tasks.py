"""One task of the paired dataset (``dataset``): a sequence simulated at one resolution,
and the worker processes that run the tasks. Apart from ``dataset`` because it is what a
worker process runs: it needs the task alone (the rig and code it must find, the controls
already written), never the settings, the plan or the face model, and the whole dataset
needs of it only ``Task``, ``run_task``, ``run_pool`` and ``simulation_code_key``.

A task survives interruption: frames are written in chunks, each chunk atomically,
followed by a checkpoint of the simulator state after its last frame and a manifest that
commits both. A resumed task verifies the committed chunks by SHA-256, warm-starts from
the checkpoint and produces the same bytes as an uninterrupted run; a finished sequence is
joined into one file. Each process keeps its rigs, simulators and skin stages
(``forget_process_cache`` drops them); a worker whose run has died stops without
committing (``check_parent``).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import content_key
from .dataset_format import (
    FORMAT,
    file_sha256,
    frames_done,
    mean_seconds,
    read_controls,
    read_json,
    read_npz,
    write_json,
    write_npz,
)
from .errors import DataError

# Sources whose change changes the simulated frames (a resumed run must not mix versions);
# files not present are skipped, so a module split keeps the key meaningful.
_SIMULATION_SOURCES = (
    "simulator.py",
    "solver_kernels.py",
    "controls.py",
    "contacts.py",
    "skin_stage.py",
    "sliding.py",
)


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


def run_pool(tasks: list[Task], workers: int, bar, deadline) -> list[dict]:
    """Run tasks on ``workers`` spawned processes; the bar advances per frame."""
    import multiprocessing as mp
    import queue as queue_module

    context = mp.get_context("spawn")
    ticks = context.Queue()
    one_thread = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in one_thread}
    os.environ.update(one_thread)  # inherited by the spawned workers
    # Workers are born ignoring Ctrl-C (an ignored signal stays ignored across exec), so
    # one pressed while they start up prints no traceback of theirs.
    answer = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = context.Pool(workers, initializer=_worker_init, initargs=(ticks, os.getpid()))
    finally:
        signal.signal(signal.SIGINT, answer)
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


__all__ = [
    "Interrupted",
    "Orphaned",
    "Task",
    "check_parent",
    "forget_process_cache",
    "run_pool",
    "run_task",
    "simulation_code_key",
]
