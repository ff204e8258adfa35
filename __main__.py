"""Command line: ``python -m physface <verb> [args]``; one module per verb in ``cli/``."""

import importlib
import sys

VERBS = {
    "check-data": "check_data",
    "build-rig": "build_rig",
    "rig-pictures": "rig_pictures",
    "muscle-pictures": "muscle_pictures",
    "demo": "demo",
    "render": "render",
    "dataset": "dataset",
    "dataset-report": "dataset_report",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        known = ", ".join(sorted(VERBS))
        print(f"usage: python -m physface <verb> [args]   verbs: {known}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"{__package__}.cli.{VERBS[argv[0]]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
