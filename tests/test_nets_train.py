"""Training of the super-resolution network (nets/train.py, issue 17) on a small synthetic
pair set: the loss falls, a stopped and resumed run ends with the same weights bit for bit
as an uninterrupted one, two torchrun processes train and write one model, a damaged
checkpoint is refused with one line.

``synthetic_pairs`` (also used by tests/test_nets_evaluate.py): an LR lattice of cubes cut
into six tets each, a skin that is a triangulated sheet inside the lattice's top layer, and
frames of a smooth deformation field; the skin gets a finer ripple on top that the
embedding in the coarse lattice cannot follow, so the embedded skin has an error to remove.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from physface.nets.pairs import PairRest, PairSequence, PairSet  # noqa: E402
from physface.nets.train import (  # noqa: E402
    CHECKPOINT_NAME,
    TrainConfig,
    TrainError,
    read_checkpoint,
    train,
    write_checkpoint,
)

# The six tets of a unit cube along its main diagonal (Kuhn), corners numbered by bits xyz.
_KUHN = ((0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7))


def _lattice(shape=(4, 4, 3), spacing=1.0):
    nx, ny, nz = shape
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    nodes = grid.reshape(-1, 3).astype(np.float32) * spacing
    index = np.arange(nx * ny * nz).reshape(shape)
    tets = []
    for i in range(nx - 1):
        for j in range(ny - 1):
            for k in range(nz - 1):
                corner = [index[i + (c & 1), j + (c >> 1 & 1), k + (c >> 2 & 1)] for c in range(8)]
                tets += [[corner[c] for c in tet] for tet in _KUHN]
    return nodes, np.array(tets, np.int64)


def _barycentric(points, nodes, tets):
    """Per point the first tet containing it and its barycentric weights."""
    corners = nodes[tets]  # (E, 4, 3)
    matrices = np.linalg.inv((corners[:, 1:] - corners[:, :1]).transpose(0, 2, 1))  # (E, 3, 3)
    elements, weights = [], []
    for p in points:
        local = np.einsum("eij,ej->ei", matrices, p - corners[:, 0])
        w = np.concatenate([1 - local.sum(1, keepdims=True), local], 1)
        e = int(np.argmax(w.min(1)))
        elements.append(e)
        weights.append(w[e])
    return np.array(elements), np.array(weights, np.float32)


def _field(points, t, ripple):
    """Smooth displacement (cm) at ``points`` for phase ``t``; ``ripple`` adds a fine wave."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    u = np.stack(
        [
            0.3 * np.sin(t) * np.sin(0.6 * y + 0.3 * z),
            0.25 * np.cos(1.3 * t) * np.sin(0.5 * x) * (1 + 0.2 * z),
            0.2 * np.sin(0.7 * t + 0.4 * x) * np.cos(0.4 * y),
        ],
        -1,
    )
    if ripple:
        u[..., 2] += 0.05 * np.sin(t) * np.sin(3.1 * x) * np.sin(2.7 * y)
    return u.astype(np.float32)


def synthetic_pairs(
    lattice=(4, 4, 3), sheet=8, frames=12, splits=None, seed=0, unconverged=()
) -> PairSet:
    """A small PairSet (see the module docstring); ``splits`` maps sequence name → split;
    ``unconverged`` lists (sequence, frame) pairs flagged as not converged."""
    nodes, tets = _lattice(lattice)
    nx, ny, nz = lattice
    u = np.linspace(0.15, 1.0 - 0.15, sheet)
    gx, gy = np.meshgrid(u * (nx - 1), u * (ny - 1), indexing="ij")
    skin_rest = np.stack([gx, gy, np.full_like(gx, nz - 1.3)], -1).reshape(-1, 3)
    skin_rest = skin_rest.astype(np.float32)
    idx = np.arange(sheet * sheet).reshape(sheet, sheet)
    quads = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    elements, weights = _barycentric(skin_rest, nodes, tets)
    d_lr = np.linalg.norm(nodes[:, None] - nodes[None], axis=2)
    lr_knn = np.argsort(d_lr, axis=1, kind="stable")[:, 1:6]
    d_skin = np.linalg.norm(skin_rest[:, None] - nodes[None], axis=2)
    k = min(20, len(nodes))
    neighbours = np.argsort(d_skin, axis=1, kind="stable")[:, :k]
    distances = np.take_along_axis(d_skin, neighbours, 1)
    rest = PairRest(
        lr_rest=nodes, lr_tets=tets, skin_rest=skin_rest, skin_triangles=triangles,
        skin_lr_neighbours=neighbours, skin_lr_distances=distances, lr_knn=lr_knn,
        skin_elements=elements, skin_weights=weights, skin_vertices=None,
    )  # fmt: skip
    splits = splits or {"a": "train", "b": "train", "v": "val", "t": "test", "g": "generalisation"}
    rng = np.random.default_rng(seed)
    sequences = {}
    for name, split in splits.items():
        phases = rng.uniform(-2.5, 2.5) + np.linspace(0, rng.uniform(2, 4), frames)
        lr = np.stack([nodes + _field(nodes, t, False) for t in phases])
        skin = np.stack([skin_rest + _field(skin_rest, t, True) for t in phases])
        converged = np.ones(frames, bool)
        for seq, frame in unconverged:
            if seq == name:
                converged[frame] = False
        sequences[name] = PairSequence(name, split, lr, skin, converged)
    return PairSet(rest, sequences, source="synthetic")


SMALL = TrainConfig(
    epochs=3, batch_size=4, learning_rate=3e-3, encoding=8, widths=(8, 16), k=3,
    upsample_hidden=8, decoder_hidden=(16,), seed=3,
)  # fmt: skip


def _state(folder: Path) -> dict:
    return read_checkpoint(folder / CHECKPOINT_NAME)["model"]


def test_training_reduces_the_loss(tmp_path):
    pairs = synthetic_pairs(frames=16, unconverged=[("a", 3), ("v", 0)])
    lines = []
    config = TrainConfig(**{**SMALL.__dict__, "epochs": 8})
    result = train(pairs, tmp_path, config, progress=False, export=False, log=lines.append)
    text = "\n".join(lines)
    assert "train: 31 frames of 2 sequences (a, b); 1 dropped" in text
    assert "val: 15 frames of 1 sequences (v); 1 dropped" in text
    assert result.finished and len(result.history) == 8
    first, last = result.history[0], result.history[-1]
    assert last["train_l1_mm"] < 0.6 * first["train_l1_mm"], result.history
    assert last["val_error_mm"] < first["val_error_mm"]
    assert (tmp_path / "learning_curve.png").is_file()
    assert (tmp_path / "train_log.json").is_file()


def test_stopped_and_resumed_equals_uninterrupted_bit_for_bit(tmp_path):
    pairs = synthetic_pairs(frames=10)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(pairs, straight, SMALL, progress=False, export=False, log=lambda line: None)
    # steps per epoch: 20 frames / 4 = 5; stop inside epoch 1 and again inside epoch 2
    lines = []
    first = train(pairs, resumed, SMALL, stop_after_steps=3, progress=False, export=False,
                  log=lines.append)  # fmt: skip
    assert not first.finished and first.step == 3
    assert any("Run the same command again to resume" in line for line in lines)
    second = train(pairs, resumed, SMALL, stop_after_steps=8, progress=False, export=False,
                   log=lines.append)  # fmt: skip
    assert second.step == 8 and any("resuming from" in line for line in lines)
    third = train(pairs, resumed, SMALL, progress=False, export=False, log=lines.append)
    assert third.finished
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    saved_a = read_checkpoint(straight / CHECKPOINT_NAME)
    saved_b = read_checkpoint(resumed / CHECKPOINT_NAME)

    def timeless(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert timeless(saved_a["history"]) == timeless(saved_b["history"])
    assert saved_a["best"] == saved_b["best"]
    for name in saved_a["best_model"]:
        assert torch.equal(saved_a["best_model"][name], saved_b["best_model"][name]), name


def test_other_settings_refuse_to_resume(tmp_path):
    pairs = synthetic_pairs(frames=6)
    train(pairs, tmp_path, SMALL, stop_after_steps=1, progress=False, export=False,
          log=lambda line: None)  # fmt: skip
    other = TrainConfig(**{**SMALL.__dict__, "learning_rate": 5e-4})
    with pytest.raises(TrainError, match="other settings .*learning_rate"):
        train(pairs, tmp_path, other, progress=False, export=False, log=lambda line: None)


def test_damaged_checkpoint_is_one_line(tmp_path, capsys):
    from physface.__main__ import main

    path = tmp_path / CHECKPOINT_NAME
    write_checkpoint(path, {"config": {}, "model": {}, "optimizer": {}, "scheduler": {},
                            "epoch": 0})  # fmt: skip
    assert read_checkpoint(path)["epoch"] == 0
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TrainError, match="damaged"):
        read_checkpoint(path)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(TrainError, match="damaged"):
        read_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainError, match="not a PhysFace training checkpoint"):
        read_checkpoint(path)

    from physface.nets.pairs import write_pairs

    data_dir = write_pairs(tmp_path / "pairs", synthetic_pairs(frames=4))
    path.write_bytes(bytes(data[: len(data) // 2]))
    status = main(["train", "--data", str(data_dir), "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 1 and len(lines) == 1, err
    assert lines[0].startswith("physface: error: The checkpoint") and "damaged" in lines[0]
    assert "delete it" in lines[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="torchrun needs a POSIX system")
def test_two_torchrun_processes_train_and_write_one_model(tmp_path):
    from physface.nets.pairs import write_pairs

    data_dir = write_pairs(tmp_path / "pairs", synthetic_pairs(frames=6))
    out = tmp_path / "model"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone", "-m", "physface", "train", "--data", str(data_dir),
        "--out", str(out), "--epochs", "2", "--batch-size", "4", "--encoding", "8",
        "--widths", "8,16", "--k", "3", "--upsample-hidden", "8", "--decoder-hidden", "16",
        "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:  # torchrun and its workers: the whole session
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, stdout + stderr
    assert stdout.count("epoch 2:") == 1, stdout  # rank 0 alone reports
    saved = read_checkpoint(out / CHECKPOINT_NAME)
    assert saved["world"] == 2 and saved["epoch"] == 2
    assert (out / "model.onnx").is_file() and (out / "model.npz").is_file()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_frame_stride_keeps_every_sth_converged_frame():
    from physface.nets.train import describe_counts, select_frames

    pairs = synthetic_pairs(frames=9, unconverged=[("a", 0)])
    data = select_frames(pairs, stride=3)
    assert data.counts["train"]["frames"] == 3 + 3  # a: frames 1, 4, 7; b: 0, 3, 6
    assert data.counts["train"]["dropped"] == 1
    np.testing.assert_array_equal(
        data.train_lr[0].numpy(), pairs.sequences["a"].lr[1] - pairs.rest.lr_rest
    )
    assert "6 frames (frame stride 3)" in describe_counts(data.counts)


def test_fixed_graph_flag_reaches_the_model_and_the_checkpoint(tmp_path):
    """``train --fixed-graph`` builds the second EdgeConv on the geodesic graph, and a
    checkpoint made without it refuses to resume with it."""
    from physface.cli.train import config_from, parser
    from physface.nets.train import build_model

    args = parser().parse_args(["--data", "d", "--out", "o", "--fixed-graph"])
    config = config_from(args)
    assert config.dynamic_graph is False
    assert config_from(parser().parse_args(["--data", "d", "--out", "o"])).dynamic_graph
    pairs = synthetic_pairs(frames=4)
    assert build_model(pairs.rest, config).dynamic_graph is False
    dynamic = TrainConfig(**{**SMALL.__dict__, "epochs": 1})
    train(pairs, tmp_path, dynamic, stop_after_steps=1, progress=False, export=False,
          log=lambda line: None)  # fmt: skip
    fixed = TrainConfig(**{**dynamic.__dict__, "dynamic_graph": False})
    with pytest.raises(TrainError, match="dynamic_graph True→False"):
        train(pairs, tmp_path, fixed, progress=False, export=False, log=lambda line: None)
