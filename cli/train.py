"""``python -m physface train --data DIR --out models/NAME``: train the super-resolution
network (Park et al. 2024) on a paired dataset or a neutral-format pair folder.

Protocol: the train sequences train, the val sequences choose the exported model, test and
generalisation sequences are never read. Frames whose fine simulation did not converge
(nor settle, nets/train.py) are dropped (the counts are printed). Loss: L1 + α face-normal
+ β feature norm, β rising from 1e-3 to 20; Adam with warm-up and cosine decay (details:
nets/train.py).

Running the same command again resumes from ``--out``'s checkpoint (same settings and
data), and ends with the same weights as a run never stopped. ``--max-minutes`` stops with
a checkpoint; so does Ctrl-C. On several processes or GPUs:

    torchrun --nproc_per_node 2 -m physface train --data DIR --out models/NAME

Writes to ``--out``: checkpoint.pt, train_log.json, learning_curve.png, and at the end
model.onnx + model.npz (the best validation epoch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import make_parser, output_folder, positive, run_reporting_errors


def _sizes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers"
        ) from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must list numbers greater than 0")
    return values


def parser():
    from ..nets.train import TrainConfig

    d = TrainConfig()
    p = make_parser("physface train", __doc__)
    p.add_argument("--data", required=True, help="a dataset folder or a neutral-format pair folder")
    p.add_argument("--out", required=True, help="the model folder (checkpoint, log, model.onnx)")
    p.add_argument("--max-minutes", type=positive(float), help="stop with a checkpoint after this")
    p.add_argument("--epochs", type=positive(int), default=d.epochs, help=f"(default {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"(default {d.seed})")
    p.add_argument("--frame-stride", type=positive(int), default=d.frame_stride,
                   help="train and validate on every S-th frame (default 1: all)")  # fmt: skip
    p.add_argument("--batch-size", type=positive(int), default=d.batch_size,
                   help=f"frames per step over all processes (default {d.batch_size})")  # fmt: skip
    p.add_argument("--learning-rate", type=positive(float), default=d.learning_rate,
                   help=f"Adam's peak rate (default {d.learning_rate:g})")  # fmt: skip
    p.add_argument("--final-learning-rate", type=positive(float), default=d.final_learning_rate,
                   help=f"after the cosine decay (default {d.final_learning_rate:g})")  # fmt: skip
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"face-normal weight ({d.alpha:g})")
    p.add_argument("--beta-start", type=positive(float), default=d.beta_start,
                   help=f"feature-norm weight at the start ({d.beta_start:g})")  # fmt: skip
    p.add_argument("--beta-end", type=positive(float), default=d.beta_end,
                   help=f"feature-norm weight at the end ({d.beta_end:g})")  # fmt: skip
    p.add_argument("--encoding", type=positive(int), default=d.encoding,
                   help=f"positional encoding width (default {d.encoding})")  # fmt: skip
    p.add_argument(
        "--widths",
        type=_sizes,
        default=d.widths,
        help="EdgeConv output widths (default " + ",".join(map(str, d.widths)) + ")",
    )
    p.add_argument("--k", type=positive(int), default=d.k, help=f"kNN graph size (default {d.k})")
    p.add_argument(
        "--upsample-hidden",
        type=positive(int),
        default=d.upsample_hidden,
        help=f"hidden width of the weighting SIREN (default {d.upsample_hidden})",
    )
    p.add_argument("--decoder-hidden", type=_sizes, default=d.decoder_hidden,
                   help="decoder SIREN widths (default " + ",".join(map(str, d.decoder_hidden))
                   + ")")  # fmt: skip
    p.add_argument("--fixed-graph", action="store_true",
                   help="second EdgeConv on the geodesic graph instead of the paper's dynamic "
                   "kNN in feature space (faster inference)")  # fmt: skip
    p.add_argument("--checkpoint-minutes", type=positive(float), default=5.0,
                   help="checkpoint within an epoch this often (default 5)")  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="cpu (default), cuda, or auto (cuda when available)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from(args):
    from ..nets.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate,
        alpha=args.alpha,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        seed=args.seed,
        frame_stride=args.frame_stride,
        encoding=args.encoding,
        widths=tuple(args.widths),
        k=args.k,
        upsample_hidden=args.upsample_hidden,
        decoder_hidden=tuple(args.decoder_hidden),
        dynamic_graph=not args.fixed_graph,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        from ..nets.pairs import load_pairs
        from ..nets.train import train

        out = output_folder(args.out)
        pairs = load_pairs(Path(args.data))
        result = train(
            pairs,
            out,
            config_from(args),
            max_minutes=args.max_minutes,
            checkpoint_minutes=args.checkpoint_minutes,
            device=args.device,
            progress=not args.no_progress,
        )
        del result  # stopped early or finished: either way the run said what it did
        return 0

    return run_reporting_errors(body, "interrupted; the checkpoint holds the last whole step")
