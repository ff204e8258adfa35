"""Network inference per frame on a real rig: ONNX Runtime and torch, with the rest-only
parts precomputed (frozen) against recomputed every frame, in one run.

    .venv/bin/python benchmarks/bench_network.py [--preset default] [--frames 20]

The network is built at each configuration with untrained weights (the cost does not depend
on the weights) on the rig's own rest shapes and neighbour tables, and the trained model
folder (``--model``, default ``models/<preset>`` when it exists) is timed as shipped;
every row plays the same LR frames (rest plus a smooth field) one at a time.
Configurations: the paper's widths with the dynamic feature-space kNN, the same on the fixed
geodesic graph, and a small one.
Ratios are against the first row's per-frame-recomputed torch time in this run. Writes
benchmarks/results/network_<preset>.json. The issue's target: ≤ 15 ms per frame with ONNX
Runtime on the project's 2-core CPU.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_simulator import machine, write_results  # noqa: E402

CONFIGS = {
    "paper widths, dynamic kNN": {},
    "paper widths, geodesic graph": {"dynamic_graph": False},
    "small, geodesic graph": {
        "dynamic_graph": False,
        "widths": (32, 64),
        "decoder_hidden": (64, 64),
        "upsample_hidden": (32, 32),
    },
}


def _frames(rest, count: int):
    import numpy as np

    rng = np.random.default_rng(0)
    lr = rest.lr_rest.astype(np.float32)
    frames = []
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        field = 0.3 * np.sin(lr * 0.4 + phase).astype(np.float32)  # cm, smooth
        frames.append(lr + field * (i + 1) / count)
    return frames


def _time(call, frames) -> float:
    call(frames[0])  # warm-up
    clock = time.perf_counter()
    for frame in frames:
        call(frame)
    return 1000.0 * (time.perf_counter() - clock) / len(frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="torch and ORT threads")
    parser.add_argument(
        "--model", help="a trained model folder to time too (default: models/<preset> if present)"
    )
    args = parser.parse_args()
    os.environ.setdefault("PHYSFACE_CACHE", str(REPO / ".cache"))
    import torch

    from physface.nets.model import SuperResolution
    from physface.nets.pairs import rig_pair_rest
    from physface.nets.runtime import (
        TorchUpsampler,
        export_model,
        load_model,
        load_torch_model,
    )
    from physface.sim.face_model import load_face_model
    from physface.sim.rig import load_rig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rig = load_rig(args.preset)
    rest = rig_pair_rest(rig, load_face_model().triangles())
    frames = _frames(rest, args.frames)
    arrays = {**rest.arrays(), "key": rest.key}
    shipped = Path(args.model) if args.model else REPO / "models" / args.preset
    models = {label: sizes for label, sizes in CONFIGS.items()}
    if (shipped / "model.npz").is_file():
        models[f"trained: {shipped.name}"] = shipped
    rows = []
    for label, sizes in models.items():
        if isinstance(sizes, Path):  # the trained model, its rig key checked
            model = load_torch_model(sizes, expect_key=rest.key).model
        else:
            model = SuperResolution(arrays, **sizes).eval()
        lr_rest = torch.as_tensor(rest.lr_rest)

        @torch.no_grad()
        def recomputed(frame, model=model, lr_rest=lr_rest):
            model.unfreeze()
            model(torch.as_tensor(frame)[None] - lr_rest)

        row = {"config": label, "parameters": sum(p.numel() for p in model.parameters())}
        row["torch_recomputed_ms"] = _time(recomputed, frames)
        frozen = TorchUpsampler(model)
        row["torch_frozen_ms"] = _time(frozen, frames)
        with tempfile.TemporaryDirectory() as folder:
            if isinstance(sizes, Path):
                folder = sizes
            else:
                export_model(model, folder, key=rest.key)
            upsampler = load_model(folder, expect_key=rest.key, threads=args.threads)
            row["onnx_ms"] = _time(upsampler, frames)
            row["onnx_mb"] = (Path(folder) / "model.onnx").stat().st_size / 1e6
        rows.append(row)
        print(f"  measured {label}", file=sys.stderr)

    facts = machine()
    base = rows[0]["torch_recomputed_ms"]
    print(f"machine: {facts['processor']}, {facts['cpus']} cores (CPU), {args.threads} threads")
    print(
        f"preset {args.preset}: LR {rest.lr_count:,} nodes, skin {rest.skin_count:,} vertices, "
        f"K={rest.skin_lr_neighbours.shape[1]}; {args.frames} frames, untrained weights"
    )
    header = f"{'configuration':<30}{'params':>9}{'torch/frame':>13}{'frozen':>9}{'ONNX RT':>9}"
    print(header + f"{'ratio':>7}{'MB':>6}")
    for r in rows:
        print(
            f"{r['config']:<30}{r['parameters']:>9,}{r['torch_recomputed_ms']:>11.1f}ms"
            f"{r['torch_frozen_ms']:>7.1f}ms{r['onnx_ms']:>7.1f}ms"
            f"{base / r['onnx_ms']:>6.1f}x{r['onnx_mb']:>6.1f}"
        )
    print(
        "torch/frame: the rest-only neighbour weights recomputed every frame; frozen: "
        "precomputed once; ratio: first row's torch/frame over this row's ONNX Runtime; "
        "target ≤ 15 ms per frame with ONNX Runtime"
    )
    write_results(f"network_{args.preset}", {"preset": args.preset, "rows": rows, "machine": facts})
    return 0


if __name__ == "__main__":
    sys.exit(main())
