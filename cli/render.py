"""Render a .blend's PhysFace heads headless: bake them, then render a frame range to PNG.

    python -m physface render scene.blend --frames 1-48 --out DIR
    blender -b scene.blend -P <path>/cli/render.py -- --frames 1-48 --out DIR

Heads already baked are rendered from their bake, which must exist and hold every
requested frame (``--rebake`` bakes them again over the frames instead). Exits non-zero
with one clear line on any failure (missing file, bad frame range, unwritable output, no
head in the scene, a missing or short bake).
"""

import sys


def _parser(with_blend: bool):
    from . import make_parser

    parser = make_parser("physface render", __doc__)
    if with_blend:
        parser.add_argument("blend", help="the .blend file to render")
    parser.add_argument("--frames", required=True, help="e.g. 1-48 or 1,5,10-12")
    parser.add_argument("--out", required=True, help="output folder for frame_NNNN.png")
    parser.add_argument("--engine", choices=("CYCLES", "EEVEE"), default="CYCLES")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--resolution-percentage", type=int, default=100)
    parser.add_argument(
        "--rebake",
        action="store_true",
        help="bake every head again over the frames (heads already baked included)",
    )
    return parser


def run(args, blend) -> int:
    from ..blender.batch import BatchError, render_frames
    from ..sim.errors import PhysFaceError

    try:
        written = render_frames(blend, args.frames, args.out, args.engine, args.samples,
                                args.resolution_percentage, rebake=args.rebake)  # fmt: skip
    except (BatchError, PhysFaceError) as error:
        print(f"physface render: error: {error}", file=sys.stderr)
        return 1
    print(f"physface render: {len(written)} frames in {args.out}")
    return 0


def main(argv: list[str]) -> int:
    """``python -m physface render``: the bpy module, with the add-on registered here."""
    args = _parser(with_blend=True).parse_args(argv)
    try:
        import bpy
    except ImportError:
        print("physface render: error: the bpy module is not installed", file=sys.stderr)
        return 1
    if not hasattr(bpy.types.Object, "physface"):
        from .. import register

        register()
    return run(args, args.blend)


def _inside_blender() -> int:
    """``blender -b file.blend -P cli/render.py -- …``: the open file, the enabled add-on."""
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    package = next(
        (m for name, m in sys.modules.items()
         if name.endswith("physface") and Path(getattr(m, "__file__", "") or "").parent == root),
        None,
    )  # fmt: skip
    if package is None:
        spec = importlib.util.spec_from_file_location(
            "physface", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["physface"] = package
        spec.loader.exec_module(package)
        package.register()
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    render = importlib.import_module(f"{package.__name__}.cli.render")
    return render.run(render._parser(with_blend=False).parse_args(argv), None)


if __name__ == "__main__":
    sys.exit(_inside_blender())
