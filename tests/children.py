"""Child processes of the tests that must answer Ctrl-C as a user's terminal would.

A shell without job control starts background commands with SIGINT ignored, and Python
keeps an ignored SIGINT instead of raising KeyboardInterrupt; a test run launched that way
would hand the ignore on to its children. ``default_sigint`` (a ``preexec_fn``) gives the
child the default disposition, so Python installs its own handler there."""

import signal


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
