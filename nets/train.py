"""Training of the super-resolution network (Park et al. 2024 §3.4, §5.2, Table 4) in torch.

``train(data, out, config)`` fits ``nets.model.SuperResolution`` on a pair set
(``nets.pairs.load_pairs``: our face dataset or the neutral format) and exports the best
model with ``nets.runtime.export_model``. ``python -m physface train`` is a thin verb over it;
``torchrun --nproc_per_node P -m physface train ...`` runs the same loop under PyTorch's
DistributedDataParallel (gloo on CPU, NCCL on GPUs).

Protocol (paper §5.2): the ``train`` sequences train, the ``val`` sequences choose the
exported model (lowest mean vertex error, mm, over the skin), ``test`` and
``generalisation`` sequences are never read here.

Frames: a frame whose fine simulation is not the fine answer (``converged`` False: for our
face dataset, the HR iteration neither reached the tolerance nor settled below
``sim.tolerances.SETTLED_RESIDUAL``) is dropped, in train and val alike; no measure of how
far off it is would give a principled weight. The counts are printed and logged.

Loss (paper eq. 7), every term a mean so that its size does not depend on M, N or the batch
(the paper's sums differ by constant factors, which Adam's scale invariance absorbs except
in the balance of the terms): L1 of the skin displacement (mean over vertices of the sum of
the three absolute coordinate errors, cm) + α · face-normal loss (mean over triangles of
1 - cos between predicted and fine face normals) + β · feature-norm loss (the model's mean
norm of the intermediate EdgeConv features). α = 1e-3; β rises geometrically from 1e-3 to
20 over the whole run (Table 4: "gradually increased from 0.001 to 20"), a function of the
global step, so a resumed run follows the same ramp.

Schedule: the paper's Adam at 1e-4 for 2800 epochs (35 hours on two A6000s) does not fit a
2-core CPU, so Adam starts at ``learning_rate`` (1e-3) after a linear warm-up over the first
2 % of the steps and decays by a cosine to ``final_learning_rate`` (1e-5) at the last step.

Data order: epoch ``e`` visits the training frames in the order of a ``DistributedSampler``
seeded with (seed, e) (one process: world size 1), in batches of ``batch_size`` frames over
all processes. The checkpoint holds the model, Adam, the scheduler, the RNG states of torch,
numpy and Python, the epoch and how many batches of it are done, the running sums of the
epoch, the history and the best model so far; a run killed and started again with the same
command continues from it and ends with the same weights, bit for bit (same world size and
thread count), as a run never stopped.

Files in ``out``: ``checkpoint.pt`` (atomic; a magic line and a SHA-256 of the payload, so a
damaged file is refused with one line), ``train_log.json`` (config, frame counts, per-epoch
losses, timings), ``learning_curve.png`` and at the end ``model.onnx`` + ``model.npz``
(the best validation epoch's weights, ``nets.runtime.export_model``). Only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from ..sim.cache import atomic_path
from ..sim.errors import PhysFaceError

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.json"
CURVE_NAME = "learning_curve.png"
CHECKPOINT_MAGIC = b"PHYSFACE-TRAIN-CHECKPOINT/1\n"
WARMUP_FRACTION = 0.02
CM_TO_MM = 10.0


class TrainError(PhysFaceError):
    """Training cannot start or continue; the message names the file or setting and the fix."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (a resumed run must match it).

    Sizes are the model's (``nets.model.SuperResolution``): ``encoding`` (positional
    encoding width), ``widths`` (EdgeConv submodule outputs D1, D2), ``k`` (kNN graphs),
    ``upsample_hidden`` (the SIREN f_θ), ``decoder_hidden`` (the SIREN decoder),
    ``dynamic_graph`` (the second EdgeConv's kNN in feature space, the paper's; False reuses
    the geodesic graph, about half the inference time at ``default``).
    ``batch_size`` is frames per optimiser step over all processes; ``frame_stride`` S
    keeps every S-th converged frame of each train and val sequence (neighbouring frames
    of a performance differ little; S > 1 buys epochs on a small machine)."""

    epochs: int = 40
    batch_size: int = 4
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-5
    alpha: float = 1e-3
    beta_start: float = 1e-3
    beta_end: float = 20.0
    seed: int = 0
    frame_stride: int = 1
    encoding: int = 32
    widths: tuple[int, ...] = (64, 128)
    k: int = 5
    upsample_hidden: int = 64
    decoder_hidden: tuple[int, ...] = (128, 128)
    dynamic_graph: bool = True

    def model_sizes(self) -> dict:
        return {
            "encoding": self.encoding,
            "widths": tuple(self.widths),
            "k": self.k,
            "upsample_hidden": self.upsample_hidden,
            "decoder_hidden": tuple(self.decoder_hidden),
            "dynamic_graph": self.dynamic_graph,
        }

    def as_json(self) -> dict:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_json(cls, value: dict) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in fields}
        )


@dataclass
class TrainData:
    """Training and validation frames as displacements from rest (cm, float32 tensors)."""

    rest: object  # nets.pairs.PairRest
    train_lr: torch.Tensor  # (F, N, 3)
    train_skin: torch.Tensor  # (F, M, 3)
    val_lr: torch.Tensor
    val_skin: torch.Tensor
    counts: dict = field(default_factory=dict)  # split -> {sequences, frames, dropped}
    key: str = ""  # content hash of the rest key and the train/val frames


@dataclass
class TrainResult:
    finished: bool
    epoch: int  # epochs completed
    step: int
    best_epoch: int | None
    best_val_error_mm: float | None
    history: list[dict]
    model_folder: Path | None  # where model.onnx/model.npz were written (when finished)
    seconds: float


# --- data --------------------------------------------------------------------------------------


def select_frames(pairs, stride: int = 1) -> TrainData:
    """The train and val frames of a ``PairSet`` as displacement tensors, frames whose HR
    simulation did not converge dropped (counted per split), then every ``stride``-th."""
    rest = pairs.rest
    lr_rest = np.asarray(rest.lr_rest, np.float32)
    skin_rest = np.asarray(rest.skin_rest, np.float32)
    arrays, counts = {}, {}
    digest = hashlib.sha256(str(rest.key).encode())
    for split in ("train", "val"):
        lr_parts, skin_parts = [], []
        count = {"sequences": [], "frames": 0, "dropped": 0, "stride": stride}
        for name in sorted(pairs.sequences):
            sequence = pairs.sequences[name]
            if sequence.split != split:
                continue
            frames = min(len(sequence.lr), len(sequence.skin))
            converged = np.asarray(sequence.converged[:frames], bool)
            kept = np.flatnonzero(converged)[::stride]
            lr = np.asarray(sequence.lr[kept], np.float32) - lr_rest
            skin = np.asarray(sequence.skin[kept], np.float32) - skin_rest
            lr_parts.append(lr)
            skin_parts.append(skin)
            count["sequences"].append(name)
            count["frames"] += len(kept)
            count["dropped"] += int(frames - converged.sum())
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(lr).tobytes())
            digest.update(np.ascontiguousarray(skin).tobytes())
        n, m = len(lr_rest), len(skin_rest)
        lr_all = np.concatenate(lr_parts) if lr_parts else np.zeros((0, n, 3), np.float32)
        skin_all = np.concatenate(skin_parts) if skin_parts else np.zeros((0, m, 3), np.float32)
        arrays[split] = (torch.from_numpy(lr_all), torch.from_numpy(skin_all))
        counts[split] = count
    if not counts["train"]["frames"]:
        raise TrainError(
            f"{pairs.source} has no converged frames in sequences of the train split; "
            "check the data (python -m physface dataset-report) or the splits."
        )
    return TrainData(
        rest=rest,
        train_lr=arrays["train"][0],
        train_skin=arrays["train"][1],
        val_lr=arrays["val"][0],
        val_skin=arrays["val"][1],
        counts=counts,
        key=digest.hexdigest()[:16],
    )


def describe_counts(counts: dict) -> str:
    """One line per split: sequences, frames used and frames dropped (not converged)."""
    lines = []
    for split, count in counts.items():
        names = ", ".join(count["sequences"]) or "none"
        every = f" (frame stride {count['stride']})" if count.get("stride", 1) > 1 else ""
        lines.append(
            f"{split}: {count['frames']} frames{every} of {len(count['sequences'])} sequences "
            f"({names}); {count['dropped']} dropped (fine simulation not converged)"
        )
    return "\n".join(lines)


# --- model, losses and schedule ----------------------------------------------------------------


def build_model(rest, config: TrainConfig) -> torch.nn.Module:
    """A freshly initialised ``SuperResolution`` for ``rest`` (seeded by the caller)."""
    from .model import SuperResolution

    return SuperResolution(rest_arrays(rest), **config.model_sizes())


def rest_arrays(rest) -> dict:
    """The PairRest arrays the model takes (numpy)."""
    from .model import REST_ARRAYS

    return {**{name: getattr(rest, name) for name in REST_ARRAYS}, "key": rest.key}


def beta_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """The feature-norm weight β at a global step: geometric from beta_start to beta_end."""
    t = step / max(1, total_steps - 1)
    return float(config.beta_start * (config.beta_end / config.beta_start) ** min(1.0, t))


def learning_rate_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier of ``learning_rate``: linear warm-up, then cosine to final_learning_rate."""
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = config.final_learning_rate / config.learning_rate
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def loss_terms(
    predicted: torch.Tensor,
    target: torch.Tensor,
    features,
    skin_rest: torch.Tensor,
    triangles: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The paper's three terms (``nets.model``'s means): ``l1`` (cm per vertex, summed over
    xyz), ``normal`` (1 - cos per triangle) and ``feature`` (EdgeConv feature norms)."""
    from .model import face_normal_loss, feature_norm_loss, l1_loss

    return {
        "l1": l1_loss(predicted, target),
        "normal": face_normal_loss(skin_rest + predicted, skin_rest + target, triangles),
        "feature": feature_norm_loss(features),
    }


# --- checkpoints -------------------------------------------------------------------------------


def write_checkpoint(path: Path, state: dict) -> None:
    """``state`` saved with torch, behind a magic line and the payload's SHA-256, atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(CHECKPOINT_MAGIC)
            handle.write(hashlib.sha256(payload).digest())
            handle.write(payload)


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by ``write_checkpoint``; TrainError (one line naming the file and
    the fix) when it is truncated, damaged or not a PhysFace training checkpoint."""
    path = Path(path)
    fix = f"delete it to train from the start, or give another --out than {path.parent}"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TrainError(
            f"The checkpoint {path} cannot be read ({error.strerror}); {fix}."
        ) from None
    head = len(CHECKPOINT_MAGIC)
    if not data.startswith(CHECKPOINT_MAGIC):
        raise TrainError(f"{path} is not a PhysFace training checkpoint; {fix}.")
    digest, payload = data[head : head + 32], data[head + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise TrainError(f"The checkpoint {path} is damaged (its checksum differs); {fix}.")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a damaged file
        raise TrainError(f"The checkpoint {path} cannot be loaded ({error}); {fix}.") from None
    missing = [k for k in ("config", "model", "optimizer", "scheduler", "epoch") if k not in state]
    if missing:
        raise TrainError(f"The checkpoint {path} lacks {', '.join(missing)}; {fix}.")
    return state


def rng_state() -> dict:
    numpy_state = np.random.get_state()  # noqa: NPY002 - the global state is what we save
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "gauss": float(numpy_state[4]),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - for any library drawing from it
    torch.manual_seed(seed)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Processes:
    """This process's place among the training processes (one, or torchrun's group)."""

    rank: int = 0
    world: int = 1
    local_world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    started_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_processes(device: str = "cpu") -> Processes:
    """Join torchrun's process group when launched by torchrun (``WORLD_SIZE`` > 1), pick the
    device and set torch's threads so that the processes on a machine share its cores."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise TrainError("--device cuda: torch sees no CUDA device here; use --device cpu.")
    chosen = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(chosen)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, (cores or 1) // max(1, local_world)))
    started = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
        started = True
    return Processes(rank, world, local_world, chosen, started)


def stop_processes(processes: Processes) -> None:
    if processes.started_group and dist.is_initialized():
        dist.destroy_process_group()


def _all_sum(values: torch.Tensor, processes: Processes) -> torch.Tensor:
    if processes.world > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


class _StopRequests:
    """SIGINT/SIGTERM set a flag that the loop reads between steps (the state is then
    consistent and can be checkpointed) instead of interrupting a step."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame):
        if self.signal is not None:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = number

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False


# --- the loop ----------------------------------------------------------------------------------


def _epoch_batches(frames: int, epoch: int, config: TrainConfig, processes: Processes):
    """This process's batches (lists of frame indices) of ``epoch``."""
    sampler = DistributedSampler(
        range(frames),
        num_replicas=processes.world,
        rank=processes.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=False,
    )
    sampler.set_epoch(epoch)
    indices = list(sampler)
    per_process = config.batch_size // processes.world
    return [indices[i : i + per_process] for i in range(0, len(indices), per_process)]


def _validate(model, data: TrainData, config: TrainConfig, processes: Processes, skin_rest, tri):
    """Mean validation L1 (mm, per vertex) and mean vertex error (mm) over the val frames,
    shared out among the processes."""
    frames = len(data.val_lr)
    if not frames:
        return None
    mine = list(range(processes.rank, frames, processes.world))
    sums = torch.zeros(3, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(mine), config.batch_size):
            chosen = mine[start : start + config.batch_size]
            lr = data.val_lr[chosen].to(processes.device)
            target = data.val_skin[chosen].to(processes.device)
            predicted, _ = model(lr)
            difference = predicted - target
            sums[0] += float(difference.abs().sum(dim=-1).mean(dim=-1).sum())
            sums[1] += float(difference.norm(dim=-1).mean(dim=-1).sum())
            sums[2] += len(chosen)
    model.train()
    sums = _all_sum(sums, processes)
    return {
        "val_l1_mm": CM_TO_MM * float(sums[0] / sums[2]),
        "val_error_mm": CM_TO_MM * float(sums[1] / sums[2]),
    }


def _write_log_and_curve(out: Path, log: dict) -> None:
    from ..sim.images import line_plot, write_png

    with atomic_path(out / LOG_NAME) as tmp:
        tmp.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    history = log["history"]
    if not history:
        return
    epochs = np.array([h["epoch"] for h in history], float)
    series = [("train L1", epochs, np.array([h["train_l1_mm"] for h in history]))]
    if history[0].get("val_l1_mm") is not None:
        series.append(("val L1", epochs, np.array([h["val_l1_mm"] for h in history])))
        series.append(("val error", epochs, np.array([h["val_error_mm"] for h in history])))
    image = line_plot(series, "learning curve", "epoch", "MM")
    write_png(image, out / CURVE_NAME)


def train(
    pairs,
    out: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    *,
    max_minutes: float | None = None,
    stop_after_steps: int | None = None,
    checkpoint_minutes: float = 5.0,
    device: str = "cpu",
    progress: bool = True,
    export: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train on ``pairs`` (a ``PairSet``) into the folder ``out``, resuming from its
    checkpoint when there is one (the config and the data must be the same).

    Stops after ``config.epochs`` (then exports the best validation model), or after
    ``max_minutes`` of training, or after the global step ``stop_after_steps`` (tests), or
    on SIGINT/SIGTERM, each time with a checkpoint to resume from. Under torchrun every
    process calls it; only rank 0 writes and logs."""
    started = time.monotonic()
    out = Path(out)
    processes = start_processes(device)
    try:
        return _train(
            pairs, out, config, processes, started, max_minutes, stop_after_steps,
            checkpoint_minutes, progress, export, log,
        )  # fmt: skip
    finally:
        stop_processes(processes)


def _train(
    pairs, out, config, processes, started, max_minutes, stop_after_steps,
    checkpoint_minutes, progress, export, log,
):  # fmt: skip
    say = log if processes.main else (lambda line: None)
    if config.batch_size % processes.world:
        raise TrainError(
            f"--batch-size {config.batch_size} does not split among {processes.world} "
            f"processes; give a multiple of {processes.world}."
        )
    data = select_frames(pairs, config.frame_stride)
    say(describe_counts(data.counts))
    frames = len(data.train_lr)
    batches_per_epoch = len(_epoch_batches(frames, 0, config, processes))
    total_steps = config.epochs * batches_per_epoch
    checkpoint_path = out / CHECKPOINT_NAME

    seed_everything(config.seed)
    model = build_model(data.rest, config).to(processes.device)
    model.fit_normalisation(data.train_lr.numpy(), data.train_skin.numpy())
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, config)
    )
    state = {
        "epoch": 0,
        "position": 0,
        "step": 0,
        "sums": [0.0, 0.0, 0.0, 0.0, 0],  # loss, l1, normal, feature, batches
        "history": [],
        "best": None,  # {"epoch", "val_error_mm"}
        "best_model": None,
        "seconds": 0.0,
    }
    if checkpoint_path.is_file():
        saved = read_checkpoint(checkpoint_path)
        _check_resumable(saved, config, data, processes, checkpoint_path)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"])
        for key in state:
            state[key] = saved[key]
        say(
            f"resuming from {checkpoint_path}: epoch {state['epoch'] + 1}/{config.epochs}, "
            f"batch {state['position']}/{batches_per_epoch}"
        )
    model.train()
    ddp = (
        DistributedDataParallel(
            model, device_ids=None if processes.device.type == "cpu" else [processes.device.index]
        )  # fmt: skip
        if processes.world > 1
        else model
    )
    skin_rest = torch.as_tensor(
        np.asarray(data.rest.skin_rest, np.float32), device=processes.device
    )
    triangles = torch.as_tensor(
        np.asarray(data.rest.skin_triangles, np.int64), device=processes.device
    )
    train_lr = data.train_lr.to(processes.device)
    train_skin = data.train_skin.to(processes.device)

    def checkpoint() -> None:
        if processes.main:
            write_checkpoint(checkpoint_path, _checkpoint_state(
                config, data, processes, model, optimizer, scheduler, state))  # fmt: skip

    def log_record() -> dict:
        return {
            "config": config.as_json(),
            "data": {"source": str(pairs.source), "key": data.key, "counts": data.counts},
            "processes": processes.world,
            "threads": torch.get_num_threads(),
            "device": str(processes.device),
            "steps_per_epoch": batches_per_epoch,
            "history": state["history"],
            "best": state["best"],
        }

    bar = None
    if processes.main and progress:
        from tqdm import tqdm

        bar = tqdm(
            total=total_steps, initial=state["step"], unit="step", desc="train",
            dynamic_ncols=True, file=sys.stderr,
        )  # fmt: skip
    last_checkpoint = time.monotonic()
    session_start_seconds = state["seconds"]
    stop_reason = None
    with _StopRequests() as requests:
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            batches = _epoch_batches(frames, epoch, config, processes)
            epoch_start = time.monotonic()
            while state["position"] < len(batches):
                chosen = batches[state["position"]]
                beta = beta_at(state["step"], total_steps, config)
                predicted, features = ddp(train_lr[chosen])
                terms = loss_terms(predicted, train_skin[chosen], features, skin_rest, triangles)
                loss = terms["l1"] + config.alpha * terms["normal"] + beta * terms["feature"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                state["position"] += 1
                state["step"] += 1
                values = [float(v.detach()) for v in (loss, *terms.values())]
                for i, value in enumerate(values):
                    state["sums"][i] += value
                state["sums"][4] += 1
                elapsed = time.monotonic() - started
                state["seconds"] = session_start_seconds + elapsed
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        epoch=epoch + 1, loss=f"{values[0]:.4g}", l1_mm=f"{10 * values[1]:.3f}",
                        normal=f"{values[2]:.3g}", feat=f"{values[3]:.3g}", beta=f"{beta:.2g}",
                    )  # fmt: skip
                flags = torch.tensor([
                    float(requests.signal is not None),
                    float(max_minutes is not None and elapsed > 60.0 * max_minutes),
                    float(stop_after_steps is not None and state["step"] >= stop_after_steps),
                ])  # fmt: skip
                flags = _all_sum(flags, processes)
                if flags.any():
                    stop_reason = ("signal", "max-minutes", "steps")[int(flags.nonzero()[0, 0])]
                    break
                if time.monotonic() - last_checkpoint > 60.0 * checkpoint_minutes:
                    if state["position"] < len(batches):
                        checkpoint()
                    last_checkpoint = time.monotonic()
            if state["position"] >= len(batches):
                _end_epoch(state, model, data, config, processes, skin_rest, triangles,
                           time.monotonic() - epoch_start, say)  # fmt: skip
                checkpoint()
                last_checkpoint = time.monotonic()
                if processes.main:
                    _write_log_and_curve(out, log_record())
            elif stop_reason is not None:
                checkpoint()
            if stop_reason is not None:
                break
    if bar is not None:
        bar.close()
    result = TrainResult(
        finished=state["epoch"] >= config.epochs,
        epoch=state["epoch"],
        step=state["step"],
        best_epoch=None if state["best"] is None else state["best"]["epoch"],
        best_val_error_mm=None if state["best"] is None else state["best"]["val_error_mm"],
        history=state["history"],
        model_folder=None,
        seconds=state["seconds"],
    )
    if processes.main:
        _write_log_and_curve(out, log_record())
    if stop_reason is not None and not result.finished:
        why = {"signal": "on request", "max-minutes": f"after {max_minutes} minutes",
               "steps": f"at step {state['step']}"}[stop_reason]  # fmt: skip
        say(
            f"stopped {why} at epoch {state['epoch'] + 1}/{config.epochs}, batch "
            f"{state['position']}/{batches_per_epoch}; checkpoint {checkpoint_path}. Run the "
            "same command again to resume."
        )
        if stop_reason == "signal":
            raise KeyboardInterrupt
        return result
    if export and processes.main:
        result.model_folder = export_best(data.rest, config, state, model, out)
        best = state["best"]
        which = f"epoch {best['epoch']} (val error {best['val_error_mm']:.3f} mm)" if best else \
            "the last epoch (no val frames)"  # fmt: skip
        say(f"trained {config.epochs} epochs in {state['seconds'] / 60:.1f} min; exported "
            f"{which} to {out}")  # fmt: skip
    if processes.world > 1:
        dist.barrier()
    return result


def _end_epoch(state, model, data, config, processes, skin_rest, triangles, seconds, say):
    sums = state["sums"]
    count = max(1, sums[4])
    record = {
        "epoch": state["epoch"] + 1,
        "step": state["step"],
        "train_loss": sums[0] / count,
        "train_l1_mm": CM_TO_MM * sums[1] / count,
        "train_normal": sums[2] / count,
        "train_feature": sums[3] / count,
        "seconds": seconds,
    }
    validation = _validate(model, data, config, processes, skin_rest, triangles)
    record.update(validation or {"val_l1_mm": None, "val_error_mm": None})
    state["history"].append(record)
    improved = validation is not None and (
        state["best"] is None or validation["val_error_mm"] < state["best"]["val_error_mm"]
    )
    if validation is None or improved:
        state["best"] = (
            {"epoch": record["epoch"], "val_error_mm": validation["val_error_mm"]}
            if validation
            else None
        )
        state["best_model"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state["epoch"] += 1
    state["position"] = 0
    state["sums"] = [0.0, 0.0, 0.0, 0.0, 0]
    val = "" if validation is None else (
        f", val L1 {validation['val_l1_mm']:.3f} mm, val error {validation['val_error_mm']:.3f} mm"
    )  # fmt: skip
    say(f"epoch {record['epoch']}: train L1 {record['train_l1_mm']:.3f} mm{val} ({seconds:.1f} s)")


def _checkpoint_state(config, data, processes, model, optimizer, scheduler, state) -> dict:
    return {
        "format": CHECKPOINT_MAGIC.decode().strip(),
        "config": config.as_json(),
        "data_key": data.key,
        "world": processes.world,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        **state,
    }


def _check_resumable(saved, config, data, processes, path) -> None:
    fix = f"give another --out, or delete {path} to start over"
    if TrainConfig.from_json(saved["config"]) != config:
        theirs = TrainConfig.from_json(saved["config"]).as_json()
        diff = [f"{k} {theirs[k]}→{v}" for k, v in config.as_json().items() if theirs.get(k) != v]
        raise TrainError(
            f"The checkpoint {path} was made with other settings ({'; '.join(diff)}); "
            f"resume with the same ones, or {fix}."
        )
    if saved.get("data_key") != data.key:
        raise TrainError(f"The checkpoint {path} was made on other data; {fix}.")
    if saved.get("world") != processes.world:
        raise TrainError(
            f"The checkpoint {path} was made by {saved.get('world')} processes, this run has "
            f"{processes.world}; resume with the same number (torchrun --nproc_per_node), or {fix}."
        )


def export_best(rest, config: TrainConfig, state: dict, model, out: Path) -> Path:
    """Export the best validation model (the last one without val frames) to ``out``."""
    from .model import SuperResolution
    from .runtime import export_model

    weights = state["best_model"]
    if weights is None:
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    best = SuperResolution.from_state(model.model_config(), weights).eval()
    export_model(best, out, skin_vertices=rest.skin_vertices)
    return out


def load_checkpoint_model(path: str | os.PathLike, rest) -> torch.nn.Module:
    """The best model held in a training checkpoint (for tests and inspection)."""
    saved = read_checkpoint(Path(path))
    config = TrainConfig.from_json(saved["config"])
    model = build_model(rest, config)
    model.load_state_dict(saved["best_model"] or saved["model"])
    return model.eval()


__all__ = [
    "CHECKPOINT_NAME",
    "CURVE_NAME",
    "LOG_NAME",
    "TrainConfig",
    "TrainData",
    "TrainError",
    "TrainResult",
    "beta_at",
    "describe_counts",
    "learning_rate_factor",
    "load_checkpoint_model",
    "read_checkpoint",
    "select_frames",
    "train",
    "write_checkpoint",
]
