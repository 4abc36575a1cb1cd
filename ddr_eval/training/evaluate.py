"""Held-out quality of a trained model, measured the way SR papers report it.

SR nets: PSNR/SSIM on the Y channel (BT.601), ``crop_border = scale``, full held-out images
downsampled with MATLAB-compatible bicubic, next to the bicubic-upsampling baseline.
Classifiers: top-1 accuracy on fresh patches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ddr_eval.data import Image
from ddr_eval.degradations import imresize
from ddr_eval.metrics.quality import psnr, ssim, to_uint8


def _mod_crop(pixels: np.ndarray, scale: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    return pixels[: h - h % scale, : w - w % scale]


PAD_MULTIPLE = 4  # RRDBNet x2/x1 pixel-unshuffles its input, so sizes must divide by 2 or 4


@torch.inference_mode()
def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """One HWC float image through an SR model, clipped to [0, 1].

    The input is reflect-padded to a multiple of 4 (as Real-ESRGAN's inference does) and the
    output cropped back, so any image size works with every architecture.
    """
    model.eval()
    h, w = lr.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].to(device)
    pad_h, pad_w = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    y = model(x)
    scale = y.shape[-1] // x.shape[-1]
    y = y[..., : h * scale, : w * scale][0].permute(1, 2, 0).clamp_(0, 1)
    return y.cpu().numpy()


def evaluate_sr(model: nn.Module, images: list[Image], scale: int, chains=None, seed: int = 0) -> dict[str, float]:
    """Mean Y-PSNR/SSIM of the model and of bicubic upsampling over ``images``.

    Without ``chains`` the LR input is the clean bicubic downsampling. A model trained on
    degraded inputs is measured on its own degradation mix instead: every image through every
    chain (seeded), against bicubic upsampling of the same degraded input.
    """
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "bicubic_psnr": [], "bicubic_ssim": []}
    pairs = []
    for i, image in enumerate(images):
        hr = _mod_crop(image.pixels, scale)
        if not chains:
            pairs.append((hr, np.clip(imresize(hr, 1 / scale), 0, 1).astype(np.float32)))
            continue
        for j, chain in enumerate(chains):
            pairs.append((hr, chain.apply(hr, np.random.default_rng([seed, i, j])).astype(np.float32)))
    for hr, lr in pairs:
        target = to_uint8(hr)
        for prefix, estimate in (("", super_resolve(model, lr)), ("bicubic_", imresize(lr, scale))):
            out = to_uint8(estimate)
            scores[prefix + "psnr"].append(psnr(out, target, crop_border=scale, test_y_channel=True))
            scores[prefix + "ssim"].append(ssim(out, target, crop_border=scale, test_y_channel=True))
    return {key: round(float(np.mean(values)), 4) for key, values in scores.items()}


@torch.inference_mode()
def evaluate_classifier(model: nn.Module, lr: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    model.eval()
    logits = model(torch.from_numpy(lr).permute(0, 3, 1, 2).contiguous())
    accuracy = (logits.argmax(1).numpy() == labels).mean()
    return {"accuracy": round(float(accuracy), 4), "chance": round(1 / float(labels.max() + 1), 4)}
