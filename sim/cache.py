"""The cache folder for derived data (rigs, imported models, datasets) and atomic writes.

Everything derived is keyed by a hash of its inputs and the code version, so a change of
either rebuilds instead of reading a stale file. Keys hold content, never an absolute path
or a modification time: the same inputs reached another way (a symlink, a copy) find the
same entry. ``PHYSFACE_CACHE`` overrides the folder. A damaged entry is removed and rebuilt
with one line saying so (``read_or_rebuild``); every write is atomic (``atomic_path``) and
gets the permissions an ordinary ``open(path, "w")`` would.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import CacheError

ENV_VAR = "PHYSFACE_CACHE"
_FIX = f"Set {ENV_VAR} to a writable folder"

# What reading a damaged or foreign cache file raises: truncated or emptied (EOFError,
# BadZipFile), a bad CRC (BadZipFile, zlib.error), not an .npz or missing arrays
# (ValueError, KeyError), other read failures (OSError).
DAMAGED_ENTRY_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, ValueError, KeyError, OSError)

T = TypeVar("T")


def _configured_root() -> tuple[Path, str]:
    value = os.environ.get(ENV_VAR)
    if value:
        return Path(value).expanduser(), f"set by {ENV_VAR}"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "physface", "the default"


def cache_root() -> Path:
    """The cache folder, created on demand (``PHYSFACE_CACHE`` or the user cache folder).

    Raises CacheError (one line naming the folder and the fix) when it is a file or cannot
    be created."""
    root, origin = _configured_root()
    if root.exists() and not root.is_dir():
        raise CacheError(f"The cache folder {root} ({origin}) is a file, not a folder. {_FIX}.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CacheError(
            f"The cache folder {root} ({origin}) cannot be created ({error.strerror}). {_FIX}."
        ) from error
    return root


def writable_cache_folder(folder: Path) -> Path:
    """``folder`` (a cache subfolder), created, once a file has been written in it.

    Call it before expensive work whose result goes there: a read-only cache then fails
    at once with CacheError, not with an OSError after the work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"The cache path {folder} is a file, not a folder. {_FIX}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".physface-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise CacheError(
            f"The cache folder {folder} is not writable ({error.strerror}). {_FIX}."
        ) from error
    return folder


def writable_cache_root() -> Path:
    """``cache_root()``, checked writable (see ``writable_cache_folder``)."""
    return writable_cache_folder(cache_root())


def check_cache_folder() -> list[str]:
    """Problems of the cache folder (empty when it can be written)."""
    try:
        writable_cache_root()
    except CacheError as error:
        return [str(error)]
    return []


def content_key(*parts: object) -> str:
    """A short stable hash of JSON-serialisable parts (inputs, settings, code version)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_DIGESTS: dict[tuple, str] = {}


def file_fingerprint(path: Path) -> list:
    """Size and SHA-256 of a file's bytes, whatever path reaches it (no path, no mtime).

    The digest is memoised within the process per (real path, inode, size, mtime), so
    asking again for an unchanged file costs one ``stat``."""
    path = Path(path)
    info = path.stat()
    memo = (os.path.realpath(path), info.st_ino, info.st_size, info.st_mtime_ns)
    digest = _DIGESTS.get(memo)
    if digest is None:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        _DIGESTS[memo] = digest
    return [info.st_size, digest]


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:  # read without changing it (threads)
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _ordinary_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` leaves: the existing file's, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    The file gets the permissions an ordinary ``open(target, "w")`` would give (mkstemp's
    own are 0600). On an exception the temporary file is removed and ``target`` is left
    untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _ordinary_mode(target))
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def read_arrays(path: Path, names: tuple[str, ...] | list[str] | None = None) -> dict:
    """The arrays of an ``.npz``, every one read in full (so a bad CRC shows here).

    ``names`` are required (KeyError when one is missing); None reads all. No pickles."""
    with np.load(path, allow_pickle=False) as stored:
        wanted = stored.files if names is None else list(names)
        missing = [name for name in wanted if name not in stored.files]
        if missing:
            raise KeyError(f"no array {', '.join(missing)}")
        return {name: stored[name] for name in wanted}


def write_arrays(path: Path, arrays: dict) -> None:
    """Write arrays as an uncompressed ``.npz`` at exactly ``path`` (no suffix added)."""
    with open(path, "wb") as handle:
        np.savez(handle, **{name: np.asarray(value) for name, value in arrays.items()})


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def read_or_rebuild(
    path: Path,
    read: Callable[[Path], T],
    build: Callable[[], T],
    write: Callable[[Path, T], None],
    what: str,
    log: Callable[[str], None] | None = None,
    rebuild: bool = False,
) -> T:
    """The value cached at ``path``, or one built now and cached there atomically.

    ``read(path)`` returns the value; it must read everything it returns (``read_arrays``
    does) and raise one of DAMAGED_ENTRY_ERRORS on a damaged or foreign file. Such an entry
    is removed and rebuilt, and ``log`` (default: stderr) gets once: "PhysFace: the cached
    <what> at <path> was unreadable (<reason>); rebuilding it." ``build()`` makes the value
    and ``write(tmp_path, value)`` writes it to a temporary file that then replaces
    ``path``. The folder is checked writable before ``build`` runs, so a read-only cache
    fails at once with CacheError. ``rebuild`` skips the read.
    """
    path = Path(path)
    if path.is_file() and not rebuild:
        try:
            return read(path)
        except PermissionError as error:
            raise CacheError(
                f"The cache file {path} cannot be read ({error.strerror}). Remove it, or set "
                f"{ENV_VAR} to a writable folder."
            ) from error
        except DAMAGED_ENTRY_ERRORS as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            (log or _stderr)(
                f"PhysFace: the cached {what} at {path} was unreadable ({reason}); rebuilding it."
            )
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only folder: writable_cache_folder says so next
    writable_cache_folder(path.parent)
    value = build()
    with atomic_path(path) as tmp:
        write(tmp, value)
    return value
