"""Where the input data lives: the data folder setting and its validation.

The data folder holds ``ICT-FaceKit/`` (the FaceXModel folder as published, or the
``FaceXModel.tar.xz`` archive of it) and optionally ``artisynth-skull/``. It is chosen by,
in order: an explicit path (the ``--data`` argument or the add-on preference), the
``PHYSFACE_DATA`` environment variable, and ``../shared/data`` beside the repository when
present. Every message names where the path came from (``DataSetting`` carries that for an
explicit path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

ENV_VAR = "PHYSFACE_DATA"
ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

FROM_ARGUMENT = "set by the --data argument"
FROM_PREFERENCE = "set by the add-on preference 'Data folder'"
FROM_ENVIRONMENT = f"set by the {ENV_VAR} variable"
FROM_DEFAULT = "the default beside the repository"
_FROM_UNNAMED = "set by the --data argument or the add-on preference"

_ICT_REQUIRED = ("generic_neutral_mesh.obj", "vertex_indices.json")


class DataSetting(str):
    """An explicit data folder path that remembers where it was set (``source``, e.g.
    ``FROM_ARGUMENT``).

    A plain ``str``, so it passes through every function that takes a data folder (and
    pickles to worker processes); only the messages read ``source``."""

    source: str

    def __new__(cls, value: str | os.PathLike, source: str) -> DataSetting:
        setting = super().__new__(cls, os.fspath(value))
        setting.source = source
        return setting

    def __reduce__(self):
        return DataSetting, (str(self), self.source)


def data_argument(value: str) -> DataSetting:
    """The ``--data`` command-line argument (an argparse ``type``)."""
    return DataSetting(value, FROM_ARGUMENT)


def preference_setting(value: str | os.PathLike) -> DataSetting:
    """The add-on preference's data folder."""
    return DataSetting(value, FROM_PREFERENCE)


@dataclass(frozen=True)
class DataFolder:
    """A validated data folder. ``ict_source`` is a FaceXModel folder or its .tar.xz;
    ``origin`` says where the folder was set."""

    root: Path
    ict_source: Path
    origin: str = FROM_DEFAULT

    @property
    def ict_is_archive(self) -> bool:
        return self.ict_source.is_file()


def default_data_root() -> Path | None:
    """The shared data folder beside the repository, if there is one."""
    candidate = PACKAGE_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def resolve_data_setting(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data folder to use (not yet validated) and where it was set; DataError when
    none is set or the set path is missing or a file."""
    candidates = (
        (getattr(explicit, "source", _FROM_UNNAMED), explicit),
        (FROM_ENVIRONMENT, os.environ.get(ENV_VAR)),
    )
    for source, value in candidates:
        if value:
            path = Path(value).expanduser()
            if path.is_dir():
                return path, source
            problem = "is a file, not a folder" if path.exists() else "does not exist"
            raise DataError(
                f"The data folder {source} {problem}: {path}. Point it at the folder "
                f"that contains ICT-FaceKit/ (clone {ICT_URL})."
            )
    default = default_data_root()
    if default is None:
        raise DataError(
            "No data folder is set. Set the PhysFace add-on preference 'Data folder', the "
            f"--data argument or the {ENV_VAR} environment variable to a folder that "
            f"contains ICT-FaceKit/ (a clone or the 'Download ZIP' archive of {ICT_URL})."
        )
    return default, FROM_DEFAULT


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data folder to use (not yet validated); raises DataError when none is set."""
    return resolve_data_setting(explicit)[0]


def find_data_folder(explicit: str | os.PathLike | None = None) -> DataFolder:
    """Resolve and validate the data folder; the error says what is missing and where."""
    root, origin = resolve_data_setting(explicit)
    ict = root / "ICT-FaceKit"
    if not ict.is_dir():
        raise DataError(
            f"The data folder {root} ({origin}) has no ICT-FaceKit/ folder. Download "
            f"ICT-FaceKit from {ICT_URL} (a clone or 'Download ZIP') and put it there as {ict}."
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
        return DataFolder(root, folder, origin)
    if archive.is_file():
        return DataFolder(root, archive, origin)
    raise DataError(
        f"{ict} holds neither FaceXModel/ nor FaceXModel.tar.xz. Copy the FaceXModel folder "
        f"of {ICT_URL} into it."
    )
