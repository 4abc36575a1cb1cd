"""MATLAB/BasicSR-compatible bicubic imresize: kernel, weights, sizes, and a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddr_eval.degradations import imresize
from ddr_eval.degradations.resize import contributions, cubic, resize_matrix

# --------------------------------------------------------------------------- slow reference
# A direct transcription of BasicSR's algorithm with Python loops and float64 maths:
# per-output-pixel weights, symmetric padding of the image, then H pass and W pass.


def _ref_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_weights(in_len: int, out_len: int, scale: float):
    width = 4 / scale if scale < 1 else 4
    taps = math.ceil(width) + 2
    rows = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + t for t in range(taps)]
        if scale < 1:
            w = [scale * _ref_cubic((u - i) * scale) for i in idx]
        else:
            w = [_ref_cubic(u - i) for i in idx]
        total = sum(w)
        rows.append(([v / total for v in w], idx))
    first_zero = any(w[0] == 0 for w, _ in rows)
    last_zero = any(w[-1] == 0 for w, _ in rows)
    if first_zero:
        rows = [(w[1 : taps - 1], i[1 : taps - 1]) for w, i in rows]
    if last_zero:
        rows = [(w[: taps - 2], i[: taps - 2]) for w, i in rows]
    pad_start = -min(i[0] for _, i in rows) + 1
    pad_end = max(i[-1] for _, i in rows) - in_len
    return rows, pad_start, pad_end


def _ref_pad(line: list[float], pad_start: int, pad_end: int) -> list[float]:
    return line[:pad_start][::-1] + line + line[len(line) - pad_end :][::-1]


def _ref_resize_line(line: list[float], scale: float) -> list[float]:
    out_len = math.ceil(len(line) * scale)
    rows, pad_start, pad_end = _ref_weights(len(line), out_len, scale)
    padded = _ref_pad(line, pad_start, pad_end)
    return [sum(w * padded[i + pad_start - 1] for w, i in zip(ws, idx)) for ws, idx in rows]


def reference_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w, c = img.shape
    out_h = math.ceil(h * scale)
    columns_done = np.zeros((out_h, w, c))
    for ch in range(c):
        for col in range(w):
            columns_done[:, col, ch] = _ref_resize_line(img[:, col, ch].tolist(), scale)
    out = np.zeros((out_h, math.ceil(w * scale), c))
    for ch in range(c):
        for row in range(out_h):
            out[row, :, ch] = _ref_resize_line(columns_done[row, :, ch].tolist(), scale)
    return out


# --------------------------------------------------------------------------- tests


def test_cubic_kernel_known_values():
    x = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.0, 2.5])
    expected = [1.0, 0.0, 0.0, 0.5625, 0.5625, -0.0625, -0.0625, 0.0, 0.0]
    np.testing.assert_allclose(cubic(x), expected, atol=1e-15)


def test_x2_antialiased_weights_match_hand_derivation():
    # Shrinking by 2 widens the kernel to 8 taps: w(d) = 0.5 * cubic(d / 2) at the distances
    # d = ±0.5, ±1.5, ±2.5, ±3.5, i.e. 0.5 * cubic(±0.25, ±0.75, ±1.25, ±1.75):
    # cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
    # cubic(1.75) = -0.0234375; they sum to 2, so the normalised weights are half of them.
    half = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875]) / 2
    expected = np.concatenate([half, half[::-1]])
    weights, indices = contributions(16, 0.5)
    assert weights.shape == (8, 8)
    np.testing.assert_allclose(weights, np.tile(expected, (8, 1)), atol=1e-15)
    # Output pixel x (1-based) is centred at input 2x - 0.5 and reads inputs 2x-4 .. 2x+3.
    np.testing.assert_array_equal(indices[3], np.arange(4, 12))


def test_resize_matrix_folds_mirrored_taps_onto_edge_pixels():
    matrix = resize_matrix(16, 0.5)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    # First output reads 1-based inputs -2..5; -2, -1, 0 mirror onto inputs 3, 2, 1.
    weights, _ = contributions(16, 0.5)
    w = weights[0]
    expected_first_row = np.zeros(16)
    expected_first_row[:5] = [w[3] + w[2], w[4] + w[1], w[5] + w[0], w[6], w[7]]
    np.testing.assert_allclose(matrix[0], expected_first_row, atol=1e-15)
    assert not matrix.flags.writeable


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4])
def test_matches_slow_reference_implementation(scale):
    img = np.random.default_rng(7).random((13, 18, 3)).astype(np.float32)
    expected = reference_imresize(img.astype(np.float64), scale)
    got = imresize(img, scale)
    assert got.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    img = np.full((24, 30, 3), 0.37, dtype=np.float32)
    np.testing.assert_allclose(imresize(img, scale), 0.37, atol=1e-6)


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((48, 36), 1 / 2, (24, 18)),
        ((48, 36), 1 / 3, (16, 12)),
        ((48, 36), 1 / 4, (12, 9)),
        ((50, 37), 1 / 2, (25, 19)),
        ((50, 37), 1 / 3, (17, 13)),
        ((50, 37), 1 / 4, (13, 10)),
        ((12, 9), 2, (24, 18)),
        ((12, 9), 3, (36, 27)),
        ((12, 9), 4, (48, 36)),
    ],
)
def test_output_size_is_ceil_of_scaled_size(shape, scale, expected):
    out = imresize(np.zeros(shape + (3,), dtype=np.float32), scale)
    assert out.shape == expected + (3,)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsampled_linear_ramp_is_linear_away_from_borders(factor):
    # A symmetric kernel with weights summing to one reproduces linear functions exactly; output
    # column k is centred at input coordinate (k + 0.5) * factor - 0.5 (0-based).
    width = 24 * factor
    ramp = 0.1 + 0.8 * np.arange(width) / width
    img = np.broadcast_to(ramp[None, :, None], (8 * factor, width, 3)).astype(np.float64)
    out = imresize(img, 1 / factor)
    centres = (np.arange(out.shape[1]) + 0.5) * factor - 0.5
    expected = 0.1 + 0.8 * centres / width
    interior = slice(3, out.shape[1] - 3)
    np.testing.assert_allclose(out[2, interior, 0], expected[interior], atol=1e-12)
    every_row_and_channel = np.broadcast_to(expected[None, interior, None], out[:, interior, :].shape)
    np.testing.assert_allclose(out[:, interior, :], every_row_and_channel, atol=1e-12)


def test_batches_resize_like_single_images():
    batch = np.random.default_rng(3).random((5, 20, 16, 3)).astype(np.float32)
    out = imresize(batch, 1 / 4)
    assert out.shape == (5, 5, 4, 3)
    for image, resized in zip(batch, out):
        np.testing.assert_allclose(resized, imresize(image, 1 / 4), atol=1e-6)


def test_grayscale_hw_input_is_supported():
    img = np.random.default_rng(4).random((12, 10)).astype(np.float32)
    color = np.repeat(img[:, :, None], 3, axis=2)
    np.testing.assert_allclose(imresize(img, 1 / 2), imresize(color, 1 / 2)[:, :, 0], atol=1e-7)


def test_no_clipping_inside_imresize():
    # A hard edge overshoots with the negative lobes of the cubic kernel (as in MATLAB).
    img = np.zeros((16, 16, 3), dtype=np.float32)
    img[:, 8:] = 1.0
    up = imresize(img, 2)
    assert up.min() < 0.0 and up.max() > 1.0


def test_float64_input_keeps_float64():
    assert imresize(np.zeros((8, 8, 3)), 1 / 2).dtype == np.float64


@pytest.mark.parametrize("bad_scale", [0, -0.5, float("nan")])
def test_rejects_non_positive_scale(bad_scale):
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((8, 8, 3), dtype=np.float32), bad_scale)
