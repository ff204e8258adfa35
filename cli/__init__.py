"""Command-line verbs: thin shells over library functions (``python -m physface <verb>``).

Every failure reaches the user as one line, ``physface: error: <problem and fix>``, with a
non-zero exit status; ``python -m physface --debug <verb>`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ..sim.errors import PhysFaceError

DEBUG_VARIABLE = "PHYSFACE_DEBUG"  # set by ``--debug``; worker processes inherit it
INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)


class UsageError(PhysFaceError):
    """A command-line argument that cannot work; the message names it and the fix."""


def debugging() -> bool:
    """Whether ``--debug`` was given: errors then show their traceback."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def error_line(error: BaseException) -> str:
    """One line for the user: the problem and the fix, never a traceback."""
    if isinstance(error, PhysFaceError):
        text = str(error)
    elif isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        reason = error.strerror or str(error)
        text = f"{reason}:{where}; check the path, its permissions and the free disk space"
    elif isinstance(error, ValueError):
        text = str(error) or "a value is out of range"
    else:
        text = (
            f"unexpected {type(error).__name__}: {error}; run again with --debug "
            "(python -m physface --debug ...) and report the traceback"
        )
    first, _, rest = text.strip().partition("\n")
    if rest.strip():
        first += " (--debug shows the details)"
    return first


def run_reporting_errors(body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """Run a verb: any error becomes one line on stderr and exit status 1, Ctrl-C the line
    ``interrupted`` and status 130; with ``--debug`` errors propagate with a traceback."""
    try:
        return body()
    except KeyboardInterrupt:
        if debugging():
            raise
        # a second Ctrl-C while the interpreter shuts down would print a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"\nphysface: {interrupted}", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # noqa: BLE001 - every error becomes one line
        if debugging():
            raise
        print(f"physface: error: {error_line(error)}", file=sys.stderr)
        return 1


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the argument and ``--help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def make_parser(prog: str, description: str | None) -> Parser:
    """The parser of a verb: raw description (the module docstring), one-line errors."""
    return Parser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as an output folder, refused up front when it or a parent is a file (the
    work would otherwise fail only at its first write)."""
    folder = Path(path).expanduser()
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                what = "is a file" if candidate == folder else f"is inside the file {candidate}"
                raise UsageError(
                    f"{flag} {path} {what}; give a folder (new or existing) for the output."
                )
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {path}: {candidate} is not writable; choose another.")
            break
    return folder


def positive(kind: type = int):
    """An argparse type: a number of ``kind`` greater than zero."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return convert
