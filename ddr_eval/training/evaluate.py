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
from ddr_eval.models.inference import super_resolve


def _mod_crop(pixels: np.ndarray, scale: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    return pixels[: h - h % scale, : w - w % scale]


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


def evaluate_conditioned(model: nn.Module, images: list[Image], sampler, seed: int = 0) -> dict[str, float]:
    """A conditioned model on each of its training chain families at mid-range strength (an oracle
    model told that chain's true parameters), averaged, beside clean-input PSNR."""
    from ddr_eval.degradations import build_chain

    per_chain = []
    for fixed, params in sampler.midpoint_chains():
        if getattr(model, "condition", None) == "oracle":
            model.set_condition(params)
        per_chain.append(evaluate_sr(model, images, sampler.scale, chains=[build_chain(fixed)], seed=seed))
    metrics = {key: round(float(np.mean([m[key] for m in per_chain])), 4) for key in per_chain[0]}
    if getattr(model, "condition", None) == "oracle":
        model.set_condition((0.0, 0.0))
    clean = evaluate_sr(model, images, sampler.scale)
    metrics.update({"clean_psnr": clean["psnr"], "clean_bicubic_psnr": clean["bicubic_psnr"],
                    "evaluated_on": "the recipe's degradation families at mid-range strength"})
    return metrics


@torch.inference_mode()
def evaluate_classifier(model: nn.Module, lr: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    model.eval()
    logits = model(torch.from_numpy(lr).permute(0, 3, 1, 2).contiguous())
    accuracy = (logits.argmax(1).numpy() == labels).mean()
    return {"accuracy": round(float(accuracy), 4), "chance": round(1 / float(labels.max() + 1), 4)}
