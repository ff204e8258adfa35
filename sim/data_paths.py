"""Where the input data lives: the data folder setting and its validation.

The data folder holds ``ICT-FaceKit/`` (the FaceXModel folder as published, or the
``FaceXModel.tar.xz`` archive of it) and optionally ``artisynth-skull/``. It is chosen by,
in order: an explicit path (the add-on preference), the ``PHYSFACE_DATA`` environment
variable, and ``../shared/data`` beside the repository when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

ENV_VAR = "PHYSFACE_DATA"
ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

_ICT_REQUIRED = ("generic_neutral_mesh.obj", "vertex_indices.json")


@dataclass(frozen=True)
class DataFolder:
    """A validated data folder. ``ict_source`` is a FaceXModel folder or its .tar.xz."""

    root: Path
    ict_source: Path

    @property
    def ict_is_archive(self) -> bool:
        return self.ict_source.is_file()


def default_data_root() -> Path | None:
    """The shared data folder beside the repository, if there is one."""
    candidate = PACKAGE_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data folder to use (not yet validated); raises DataError when none is set."""
    for source, value in (("the add-on preference", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise DataError(
                    f"The data folder set by {source} does not exist: {path}. "
                    f"Point it at a folder that contains ICT-FaceKit/ (clone {ICT_URL})."
                )
            return path
    default = default_data_root()
    if default is None:
        raise DataError(
            "No data folder is set. Set the PhysFace add-on preference 'Data folder' or the "
            f"{ENV_VAR} environment variable to a folder that contains ICT-FaceKit/ "
            f"(a clone or the 'Download ZIP' archive of {ICT_URL})."
        )
    return default


def find_data_folder(explicit: str | os.PathLike | None = None) -> DataFolder:
    """Resolve and validate the data folder; the error says what is missing and where."""
    root = resolve_data_root(explicit)
    ict = root / "ICT-FaceKit"
    if not ict.is_dir():
        raise DataError(
            f"The data folder {root} has no ICT-FaceKit/ folder. Download ICT-FaceKit from "
            f"{ICT_URL} (a clone or 'Download ZIP') and put it there as {ict}."
        )
    folder = ict / "FaceXModel"
    archive = ict / "FaceXModel.tar.xz"
    if folder.is_dir():
        missing = [name for name in _ICT_REQUIRED if not (folder / name).is_file()]
        if missing:
            raise DataError(
                f"{folder} is incomplete: missing {', '.join(missing)}. Replace it with the "
                f"FaceXModel folder of {ICT_URL}."
            )
        return DataFolder(root, folder)
    if archive.is_file():
        return DataFolder(root, archive)
    raise DataError(
        f"{ict} holds neither FaceXModel/ nor FaceXModel.tar.xz. Copy the FaceXModel folder "
        f"of {ICT_URL} into it."
    )
