"""``python -m physface check-data [--data DIR]``: validate the data folder."""

import argparse

from ..sim.data_paths import find_data_folder
from . import run_reporting_errors


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="physface check-data", description=__doc__)
    parser.add_argument("--data", help="data folder (default: PHYSFACE_DATA or ../shared/data)")
    args = parser.parse_args(argv)

    def body() -> int:
        folder = find_data_folder(args.data)
        print(f"data folder: {folder.root}\nface model:  {folder.ict_source}")
        return 0

    return run_reporting_errors(body)
