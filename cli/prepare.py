"""``python -m physface prepare --lr LR_DIR --hr HR_DIR --out DIR [--lr-mesh FILE]
[--splits splits.json]``: paired data for the super-resolution network from folders of
per-frame OBJ files, written in the neutral format that ``train`` and ``evaluate`` read
exactly as they read a face dataset.

LR_DIR holds the LR node positions per frame (OBJ ``v`` lines) and HR_DIR the HR surface
per frame, either as ``*.obj`` files directly (one sequence, named ``sequence``) or as one
sub-folder of them per sequence (the same sub-folders in both). Frames pair in name
order (numbers compared as numbers). ``rest.obj`` in a folder is its rest pose; without
one the first frame is. The LR tetrahedra come from ``--lr-mesh`` (any tet mesh meshio
reads: .msh, .vtk, .vtu, …) or from the LR rest OBJ, whose faces list each tet's four
triangles in a row; the HR rest OBJ's faces are the skin triangles. Positions in cm.

Computed: the embedding of the HR rest vertices in the LR tets, each LR node's 5 geodesic
neighbours on the LR mesh, and each HR vertex's 20 nearest LR nodes along the HR surface.
``--splits``: {"train": [names], "val": [...], "test": [...], "generalisation": [...]};
unlisted sequences train. The format: ``nets/pairs.py`` (module docstring).
"""

import time
from pathlib import Path

from . import UsageError, make_parser, output_folder, run_reporting_errors


def main(argv: list[str]) -> int:
    parser = make_parser("physface prepare", __doc__)
    parser.add_argument("--lr", required=True, help="folder of per-frame LR OBJ files")
    parser.add_argument("--hr", required=True, help="folder of per-frame HR surface OBJ files")
    parser.add_argument("--out", required=True, help="folder for the prepared pairs")
    parser.add_argument("--lr-mesh", help="LR tet mesh file (meshio formats, or a tet OBJ)")
    parser.add_argument("--splits", help="splits JSON file (default: every sequence trains)")
    args = parser.parse_args(argv)

    def body() -> int:
        from ..nets.pairs import write_pairs
        from ..nets.prepare import prepare_pairs

        for flag, value in (("--lr", args.lr), ("--hr", args.hr)):
            if not Path(value).is_dir():
                raise UsageError(f"{flag} {value} is not a folder; give the folder of OBJ frames.")
        for flag, value in (("--lr-mesh", args.lr_mesh), ("--splits", args.splits)):
            if value is not None and not Path(value).is_file():
                raise UsageError(f"{flag} {value} does not exist; give the file.")
        out = output_folder(args.out)
        start = time.perf_counter()
        pairs = prepare_pairs(
            args.lr,
            args.hr,
            args.lr_mesh,
            args.splits,
            progress=lambda stage: print(f"  {stage}", flush=True),
        )
        write_pairs(out, pairs)
        rest = pairs.rest
        frames = sum(s.frames for s in pairs.sequences.values())
        print(
            f"prepared {out}: LR {rest.lr_count} nodes, {len(rest.lr_tets)} tets; skin "
            f"{rest.skin_count} vertices, {len(rest.skin_triangles)} triangles; "
            f"{len(pairs.sequences)} sequences, {frames} frames; key {rest.key} "
            f"({time.perf_counter() - start:.1f} s)"
        )
        for split, names in pairs.splits().items():
            if names:
                print(f"  {split}: {', '.join(names)}")
        return 0

    return run_reporting_errors(body)
