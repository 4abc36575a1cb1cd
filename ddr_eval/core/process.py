"""Process-wide settings the command line applies before it starts work.

Two defaults of the C libraries under torch cost a CPU run a large share of its time, and both
are settings of the whole process, so the ``ddr-eval`` command sets them (importing
``ddr_eval`` as a library changes nothing; a user's own setting always wins):

* **glibc's allocator** returns every large block (> 128 KiB, adaptively up to 32 MiB) to the
  kernel when it is freed, so each forward pass maps its activation tensors afresh and the
  kernel zero-fills every page again: millions of minor page faults a suite, a third of the
  forward passes' CPU time spent in the kernel. Raising ``M_MMAP_THRESHOLD`` and
  ``M_TRIM_THRESHOLD`` keeps freed blocks in the heap for the next pass. The resident size
  then stays at the run's high-water mark instead of falling back between passes.
* **OpenMP's wait policy**: torch's threads spin at every barrier by default. While the
  metrics of a finished model run on another thread (``pipeline/overlap.py``), a spinning
  thread burns the core that thread needs; ``OMP_WAIT_POLICY=PASSIVE`` makes it sleep. It only
  takes effect if set before torch is imported.

``DDR_EVAL_PROCESS_TUNING=0`` turns both off (e.g. to measure their effect).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = (1 << 31) - 1


def tune_process() -> dict[str, bool]:
    """Apply the settings above where they are possible; returns which were applied."""
    if os.environ.get("DDR_EVAL_PROCESS_TUNING", "1") == "0":
        return {"malloc": False, "omp_passive": False}
    omp = "OMP_WAIT_POLICY" not in os.environ and "torch" not in sys.modules
    if omp:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return {"malloc": _keep_freed_memory(), "omp_passive": omp}


def _keep_freed_memory() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
