"""Atomic file writes: a reader (or an interrupted run) never sees half a file.

Every writer of the package (reports, baselines, JUnit XML, caches, checkpoints, upscaled
images) goes through :func:`atomic_write`: write a temporary file in the target's directory,
then ``os.replace`` it over the target, which POSIX and Windows make atomic on one file system.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it into place.

    ``write`` may use any writer that takes a path (``np.savez``, ``PIL.Image.save``,
    ``safetensors.torch.save_file``); on any failure the temporary file is removed and the
    target is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """:func:`atomic_write` of a binary file."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
