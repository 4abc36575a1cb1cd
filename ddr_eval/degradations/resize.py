"""MATLAB-compatible bicubic ``imresize`` (antialiased), vectorised with numpy.

SR benchmarks make their LR inputs with MATLAB's ``imresize(img, 1/scale, 'bicubic')``; PIL,
OpenCV and torch resize differently (no antialiasing or other boundary handling), which shifts
PSNR by tenths of a dB and changes what networks see. BasicSR's
``basicsr.utils.matlab_functions.imresize`` reproduces MATLAB, and this module reproduces
BasicSR's algorithm: the cubic kernel with a = -0.5, a kernel widened by ``1/scale`` when
shrinking (antialiasing), rows normalised to sum to one, symmetric (edge-including) mirroring at
the borders, and BasicSR's rule for dropping the spare first/last tap column.

Instead of looping over output pixels, each axis' resampling is folded into a dense
``(out_length, in_length)`` matrix (mirrored taps are added onto the pixel they reflect to), so
resizing is two matrix products (height first, as BasicSR does). The matrices depend only on
``(length, scale)`` and are cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

KERNEL_WIDTH = 4  # support of the cubic kernel, in input pixels, before antialias widening


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``'bicubic'``)."""
    absx = np.abs(np.asarray(x, dtype=np.float64))
    absx2 = absx**2
    absx3 = absx**3
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def output_length(in_length: int, scale: float) -> int:
    """MATLAB's output size: ``ceil(in_length * scale)``."""
    return math.ceil(in_length * scale)


def contributions(in_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 1-based input indices for each output pixel, as BasicSR computes them.

    Returns ``(weights, indices)``, both ``(out_length, taps)``; indices may fall outside
    ``1..in_length`` and are resolved by symmetric mirroring. Exposed for testing and for
    readers who want to compare with MATLAB's ``contributions`` function.
    """
    out_len = output_length(in_length, scale)
    antialias = scale < 1
    kernel_width = KERNEL_WIDTH / scale if antialias else KERNEL_WIDTH

    x = np.arange(1, out_len + 1, dtype=np.float64)
    # Inverse mapping: 0.5 in output space maps to 0.5 in input space, 0.5 + scale to 1.5.
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2  # one spare tap; dropped below when its weights are zero
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if antialias else cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # BasicSR's bookkeeping (kept for bit-for-bit agreement): if any weight in the first column
    # is exactly zero, keep columns 1..taps-2; then, if any weight in the original last column
    # is zero, keep the first taps-2 columns of what is left.
    first_has_zero = bool(np.any(weights[:, 0] == 0))
    last_has_zero = bool(np.any(weights[:, -1] == 0))
    if first_has_zero:
        weights, indices = weights[:, 1 : taps - 1], indices[:, 1 : taps - 1]
    if last_has_zero:
        weights, indices = weights[:, : taps - 2], indices[:, : taps - 2]
    return weights, indices.astype(np.int64)


def mirror_index(one_based: np.ndarray, length: int) -> np.ndarray:
    """Map 1-based indices outside ``1..length`` back inside by symmetric (edge-repeating)
    reflection, returning 0-based indices: ``0 -> 0, -1 -> 1, length+1 -> length-1``.

    Matches BasicSR's symmetric padding and also covers kernels wider than the image.
    """
    period = 2 * length
    folded = np.mod(np.asarray(one_based) - 1, period)
    return np.where(folded >= length, period - 1 - folded, folded)


@lru_cache(maxsize=128)
def resize_matrix(in_length: int, scale: float) -> np.ndarray:
    """Dense ``(out_length, in_length)`` float64 matrix resizing one axis (read-only, cached)."""
    if in_length < 1:
        raise ValueError(f"cannot resize an axis of length {in_length}")
    weights, indices = contributions(in_length, scale)
    matrix = np.zeros((weights.shape[0], in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(weights.shape[0])[:, None], weights.shape)
    np.add.at(matrix, (rows, mirror_index(indices, in_length)), weights)
    matrix.setflags(write=False)
    return matrix


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Resize like MATLAB's ``imresize(img, scale, 'bicubic')`` with antialiasing.

    ``img`` is HW, HWC or a NHWC batch of floats (nominally in [0, 1]); ``scale < 1`` shrinks,
    ``> 1`` enlarges, and each spatial size becomes ``ceil(size * scale)``. The result is not
    clipped (MATLAB does not clip either; overshoot near edges is real). float64 input stays
    float64, anything else is computed and returned as float32.
    """
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"imresize scale must be a positive number, got {scale}")
    arr = np.asarray(img)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"imresize expects HW, HWC or NHWC arrays, got shape {arr.shape}")
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    h_axis = 1 if arr.ndim == 4 else 0
    w_axis = h_axis + 1

    resized = _resize_axis(arr.astype(dtype, copy=False), h_axis, scale)
    return _resize_axis(resized, w_axis, scale)


def _resize_axis(arr: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """Apply the cached resize matrix along one axis as a single matrix product."""
    matrix = resize_matrix(arr.shape[axis], scale).astype(arr.dtype, copy=False)
    # tensordot reshapes to one 2-D product (one BLAS call) instead of many small ones.
    out = np.tensordot(arr, matrix, axes=([axis], [1]))  # resized axis is now last
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))
