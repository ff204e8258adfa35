"""Command-line verbs: thin shells over library functions (``python -m physface <verb>``)."""

import sys
from collections.abc import Callable

from ..sim.errors import PhysFaceError


def run_reporting_errors(body: Callable[[], int]) -> int:
    """Run a verb; a PhysFaceError becomes one clear line on stderr and exit status 1."""
    try:
        return body()
    except PhysFaceError as error:
        print(f"physface: error: {error}", file=sys.stderr)
        return 1
