"""``python -m physface check-data [--data DIR]``: read every input file as the rig build
would (the index file, every OBJ, the whole archive) and check the cache folder; list
every problem, one line each, and exit 1 when there is any."""

import argparse
import sys

from ..sim.cache import cache_root, check_cache_folder
from ..sim.data_paths import data_argument, find_data_folder
from ..sim.face_model import check_data_folder
from . import run_reporting_errors


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="physface check-data", description=__doc__)
    parser.add_argument(
        "--data",
        type=data_argument,
        help="data folder (default: PHYSFACE_DATA, else ../shared/data beside the repository)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        folder = find_data_folder(args.data)
        print(f"data folder: {folder.root} ({folder.origin})")
        print(f"face model:  {folder.ict_source} (reading every file…)", flush=True)
        problems = check_data_folder(args.data) + check_cache_folder()
        for problem in problems:
            print(f"physface: error: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"cache:       {cache_root()}\nall files read; no problems found.")
        return 0

    return run_reporting_errors(body)
