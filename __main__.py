"""Command line: ``python -m physface [--debug] <verb> [args]``; one module per verb in ``cli/``.

Errors reach the user as one line (``physface: error: ...``) and a non-zero exit status;
``--debug`` (anywhere before a ``--``) shows the traceback instead.
"""

import difflib
import importlib
import os
import sys

VERBS = {
    "check-data": "check_data",
    "build-rig": "build_rig",
    "rig-pictures": "rig_pictures",
    "muscle-pictures": "muscle_pictures",
    "action-units": "action_units",
    "demo": "demo",
    "render": "render",
    "dataset": "dataset",
    "dataset-report": "dataset_report",
    "train": "train",
    "evaluate": "evaluate",
    "prepare": "prepare",
}
USAGE = "usage: python -m physface [--debug] <verb> [args]   (<verb> --help for its options)"


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (before any ``--``) and whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    return [a for a in argv[:end] if a != "--debug"] + argv[end:], debug


def _unknown_verb(verb: str) -> str:
    close = difflib.get_close_matches(verb, VERBS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"physface: error: unknown verb {verb!r}{hint} the verbs are {', '.join(sorted(VERBS))}"


def main(argv: list[str] | None = None) -> int:
    argv, debug = _take_debug(list(sys.argv[1:] if argv is None else argv))
    from .cli import DEBUG_VARIABLE, run_reporting_errors

    if debug:
        os.environ[DEBUG_VARIABLE] = "1"
    if not argv or argv[0] in ("-h", "--help"):
        stream = sys.stdout if argv else sys.stderr
        print(f"{USAGE}\nverbs: {', '.join(sorted(VERBS))}", file=stream)
        return 0 if argv else 2
    if argv[0] not in VERBS:
        print(_unknown_verb(argv[0]), file=sys.stderr)
        return 2

    def verb() -> int:
        module = importlib.import_module(f"{__package__}.cli.{VERBS[argv[0]]}")
        return module.main(argv[1:])

    return run_reporting_errors(verb)


if __name__ == "__main__":
    sys.exit(main())
