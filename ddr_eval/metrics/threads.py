"""How many threads the numerical libraries may use while a metric computes.

Metric sizes are small (hundreds to thousands of rows): a second BLAS thread gains nothing
there and, on a busy machine, spinning OpenBLAS threads cost orders of magnitude. The
pipeline's overlap thread (``pipeline/overlap.py``) and the metrics' decompositions limit
the pools through these context managers.
"""

from __future__ import annotations

from functools import lru_cache

from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    """The process's BLAS and OpenMP pools, found once: ``threadpool_limits`` looks them up
    anew on every call (a scan of every loaded library), and metrics limit threads per SVD."""
    return ThreadpoolController()


def limited_threads(limits: int = 1, user_api: str | None = None):
    """Context manager: at most ``limits`` threads in the BLAS (``user_api="blas"``), OpenMP
    (``"openmp"``) or all (None) pools while it is open."""
    return _threadpools().limit(limits=limits, user_api=user_api)


def single_threaded_blas():
    """Context manager: one BLAS thread for the small decompositions metrics do (PCA/SVD).

    At metric sizes (hundreds to thousands of rows, tens to hundreds of columns) a second
    thread gains nothing, and on a shared 2-core machine a busy core makes OpenBLAS's spinning
    threads slower by orders of magnitude (measured: 0.45 s instead of 0.7 ms for a 400 x 48 SVD).
    """
    return limited_threads(1, "blas")
