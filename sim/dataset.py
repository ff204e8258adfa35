"""Generation of the paired dataset: the same controls simulated on the LR lattice and the
HR mesh (Park et al. 2024 §4). The format and its readers are ``dataset_format`` (numpy
only); running one (sequence, resolution) task, its chunks, checkpoints and resume, and
the worker pool are ``dataset_tasks``. This module is the dataset as a whole: its
settings, the plan of sequences, the request checks, the files every task shares
(dataset.json, rest.npz, each sequence's controls) and the run that hands out the tasks.

Per sequence (four themes, and the §5.3 sequences beyond the training space) the controls
are generated once and simulated at each resolution. Generation spreads the (sequence,
resolution) tasks over processes ('spawn'; each worker loads the rig from the cache, with
the run's data folder, and runs Warp on the CPU); a run holds the folder's lock, refuses
a folder started with other settings, rig or code, and resumes one started with the same.
"""

from __future__ import annotations

import math
import numbers
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cache import cache_root
from .dataset_format import (
    FORMAT,
    RESOLUTIONS,
    file_sha256,
    frames_done,
    manifest_path,
    read_json,
    write_json,
    write_npz,
)
from .dataset_tasks import Task, run_pool, run_task, simulation_code_key
from .errors import DataError, PhysFaceError
from .tolerances import TRAINING_TOLERANCE


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
    from .performances import DATASET_THEMES, GENERALISATION

    names = [
        theme if variant == 0 else f"{theme}_v{variant}"
        for theme in DATASET_THEMES
        for variant in range(settings.variants)
    ]
    return names + list(GENERALISATION)


def plan_performances(settings: DatasetSettings, model, anatomy, book=None) -> list:
    """The dataset's sequences: each theme, the paper's and the range of motion
    (``variants`` seeds, named ``theme`` for the first and ``theme_vK`` after), then the §5.3
    sequences."""
    from .performances import (
        DATASET_THEMES,
        GENERALISATION,
        generalisation_performance,
        load_performance_book,
        theme_performance,
    )

    book = book or load_performance_book()
    performances = []
    for theme in DATASET_THEMES:
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


def _rig_file(rig) -> Path:
    return cache_root() / "rigs" / f"{rig.key}.npz"


# --- the whole dataset -------------------------------------------------------------------------


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


def _refuse_another_dataset(out_dir: Path, meta: dict) -> str:
    """Refuse a folder holding a dataset made otherwise. "new" when the folder holds none,
    "same" for the same plan, "extended" when the plan adds sequences to one made with the
    same settings, rig and code (a theme added to the performance book): the sequences
    already there are kept, frame for frame, and the new ones are simulated beside them."""
    old = read_json(out_dir / "dataset.json")
    if old is None:
        return "new"
    changed = []
    for key, value in meta.items():
        if key == "sequences":
            continue
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            changed += [f"{key}.{k}" for k in value if old[key].get(k) != value[k]]
        elif old.get(key) != value:
            changed.append(key)
    planned = {s["name"]: s for s in meta["sequences"]}
    kept = [s["name"] for s in old.get("sequences", []) if planned.get(s["name"]) == s]
    if len(kept) < len(old.get("sequences", [])):
        changed.append("sequences")
    if changed:
        raise DataError(
            f"{out_dir} holds a dataset made with other {', '.join(changed)}; generate "
            "into a new folder, or delete the old one to start over."
        )
    return "same" if len(kept) == len(planned) else "extended"


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
            return run_pool(tasks, workers, bar, deadline)
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
        folder = _refuse_another_dataset(out_dir, meta)
        tasks = _write_inputs(out_dir, rig, model, performances, chosen, resolutions, common)
        if folder != "same":
            write_json(out_dir / "dataset.json", meta)
        summaries = _run_tasks(_ordered(tasks), workers, progress, deadline, interrupt_after)
    _raise_failures(summaries)
    return DatasetRun(out_dir, meta, summaries, time.perf_counter() - clock)


def machine_description() -> str:
    """Host, architecture, core count and system, for timing reports."""
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, {platform.system()}"


__all__ = [
    "DatasetRun",
    "DatasetSettings",
    "SettingsError",
    "exclusive_folder",
    "generate_dataset",
    "machine_description",
    "plan_names",
    "plan_performances",
]
