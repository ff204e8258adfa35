"""The cache folder for derived data (rigs, imported models, datasets) and atomic writes.

Everything derived is keyed by a hash of its inputs and the code version, so a change of
either rebuilds instead of reading a stale file. ``PHYSFACE_CACHE`` overrides the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

ENV_VAR = "PHYSFACE_CACHE"


def cache_root() -> Path:
    """The cache folder, created on demand (``PHYSFACE_CACHE`` or the user cache folder)."""
    value = os.environ.get(ENV_VAR)
    if value:
        root = Path(value).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "physface"
    root.mkdir(parents=True, exist_ok=True)
    return root


def content_key(*parts: object) -> str:
    """A short stable hash of JSON-serialisable parts (inputs, settings, code version)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(path: Path) -> list:
    """Name, size and modification time: enough to notice a replaced input file."""
    stat = path.stat()
    return [path.name, stat.st_size, int(stat.st_mtime)]


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
