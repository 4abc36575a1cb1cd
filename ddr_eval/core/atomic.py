"""Atomic file writes: a reader (or an interrupted run) never sees half a file.

Every writer of the package (reports, baselines, JUnit XML, caches, checkpoints, upscaled
images) goes through :func:`atomic_write`: write a temporary file in the target's directory,
then ``os.replace`` it over the target, which POSIX and Windows make atomic on one file system.

Temporary names carry the writing process's id (``.NAME.pid123.XXXX.tmp``), so a later run can
tell a temporary file a killed process left behind (its process is gone) from one another
running process is writing right now: :func:`remove_orphan_temps` removes only the former.
The finished file gets the mode an ordinary ``open()`` would give it (``0o666 & ~umask``), not
``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

PROCESS_START = time.time()
"""When this process imported the package: a temporary file with this process's id but older
than this is an orphan of an earlier process that had the same id."""
LEGACY_TEMP_AGE_S = 3600
"""Temporary files without a process id (written before ids were recorded) count as orphans
once they have not changed for this long."""
REPORT_TEMP_PREFIX = ".tmp-report-"

_TEMP_FILE = re.compile(r"^\..+\.pid(\d+)\.[^.]+\.tmp$")
_LEGACY_TEMP_FILE = re.compile(r"^\..+\.[^.]+\.tmp$")
_TEMP_DIR = re.compile(r"^" + re.escape(REPORT_TEMP_PREFIX) + r"(?:pid(\d+)-)?")
_umask_lock = threading.Lock()
_umask: int | None = None


def process_umask() -> int:
    """The process's umask, read once (Linux: from /proc, without changing it; elsewhere by
    setting and restoring it under a lock, before any writer thread starts)."""
    global _umask
    with _umask_lock:
        if _umask is None:
            try:
                status = Path("/proc/self/status").read_text()
                _umask = int(re.search(r"^Umask:\s*([0-7]+)", status, re.M).group(1), 8)
            except (OSError, AttributeError, ValueError):
                _umask = os.umask(0o022)
                os.umask(_umask)
        return _umask


def temp_prefix(name: str) -> str:
    """The prefix of this process's temporary files for ``name``."""
    return f".{name}.pid{os.getpid()}."


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it into place.

    ``write`` may use any writer that takes a path (``np.savez``, ``PIL.Image.save``,
    ``safetensors.torch.save_file``); on any failure the temporary file is removed and the
    target is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~process_umask())
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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_orphan_temp(path: Path, now: float | None = None, legacy: bool = True) -> bool:
    """Whether ``path`` is a temporary file or report directory an earlier process left behind:
    its writer is gone (with this process's id: it is older than this process; without a
    recorded writer: untouched for :data:`LEGACY_TEMP_AGE_S`, and ``legacy=False`` leaves such
    files alone, for directories that may hold other programs' ``.*.tmp`` files)."""
    match = (_TEMP_DIR if path.name.startswith(REPORT_TEMP_PREFIX) else _TEMP_FILE).match(path.name)
    if match is None and not (legacy and _LEGACY_TEMP_FILE.match(path.name)):
        return False
    try:
        modified = path.lstat().st_mtime
    except OSError:
        return False
    pid = int(match.group(1)) if match and match.group(1) else None
    if pid is None:
        return modified < (now or time.time()) - LEGACY_TEMP_AGE_S
    if pid == os.getpid():  # ours only if written before this process began (an earlier holder of the id)
        return modified < PROCESS_START
    return not _process_alive(pid)


def remove_path(path: Path) -> None:
    """Remove a file, link or directory tree (a directory where a file belongs is removed too)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def remove_orphan_temps(directory: str | Path, recursive: bool = True, legacy: bool = True) -> int:
    """Remove the orphaned temporary files (and report directories) under ``directory``; returns
    how many (see :func:`is_orphan_temp`). Errors are ignored: another process may be cleaning
    up the same files."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    candidates = directory.rglob(".*") if recursive else directory.glob(".*")
    removed = 0
    for path in list(candidates):
        if not is_orphan_temp(path, legacy=legacy):
            continue
        try:
            remove_path(path)
            removed += 1
        except OSError:
            pass
    return removed
