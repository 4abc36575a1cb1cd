"""Memory: the batch size adapts to ``runtime.expected_memory_gib``, and out-of-memory backs off.

The rule (``ddr_eval/pipeline/memory.py``): baseline + held arrays + batch x per-patch
activations <= expected memory. These tests check that the estimate's parts follow from the
architecture, that it is not below what a forward pass really takes, that a small budget picks
a smaller batch without changing any number, and that a budget nothing fits in is refused
before any work.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage
from torch import nn

from ddr_eval.cli import main
from ddr_eval.core.errors import UserError
from ddr_eval.features.extract import extract_features
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.models.inference import BASELINE_BYTES, GIB, forward_footprint
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import load_suite

NUM_FEAT, NUM_BLOCK = 16, 2
ARCH_KWARGS = dict(num_feat=NUM_FEAT, num_block=NUM_BLOCK, upscale=2)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return build_arch("MSRResNet", **ARCH_KWARGS).eval()


# -- the per-patch estimate ----------------------------------------------------------------------


def test_footprint_reads_feature_widths_off_the_architecture():
    model = _model()
    deep = model.feature_taps()["deep"]
    footprint = forward_footprint(model, (12, 10, 3), [deep], outputs=False)
    assert footprint.feature_width(deep, "gap") == NUM_FEAT
    assert footprint.feature_width(deep, "gmp") == NUM_FEAT
    assert footprint.feature_width(deep, "flatten") == NUM_FEAT * 12 * 10
    assert footprint.output_numel == 0
    with_outputs = forward_footprint(model, (12, 10, 3), [deep], outputs=True)
    assert with_outputs.output_numel == 3 * 24 * 20


def test_footprint_grows_with_the_patch_and_with_the_upsampling_tail():
    model = _model()
    deep = model.feature_taps()["deep"]
    small = forward_footprint(model, (8, 8, 3), [deep], outputs=False).activation_bytes
    large = forward_footprint(model, (16, 16, 3), [deep], outputs=False).activation_bytes
    assert large == 4 * small  # every activation scales with the patch area
    # the largest body layer: a 3x3 conv, 16 -> 16 channels: input + output + unfolded input, float32
    assert small == (NUM_FEAT + NUM_FEAT + NUM_FEAT * 9) * 8 * 8 * 4
    tail = forward_footprint(model, (8, 8, 3), [deep], outputs=True).activation_bytes
    assert tail > small  # the x2 tail works on 4x the pixels


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def _current_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads and resets VmHWM in /proc")
def test_estimate_is_not_below_the_measured_peak_of_a_forward_pass():
    """Peak RSS of a real extraction (batch 16, SR outputs kept) stays within the estimate."""
    torch.manual_seed(0)
    model = build_arch("MSRResNet", num_feat=48, num_block=2, upscale=4).eval()
    deep = model.feature_taps()["deep"]
    lr = np.random.default_rng(0).random((16, 24, 24, 3), dtype=np.float32)
    extract_features(model, lr[:2], [deep], batch_size=2, return_outputs=True, device="cpu")  # warm up
    footprint = forward_footprint(model, lr.shape[1:], [deep], outputs=True)
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    before = _current_rss_bytes()
    result = extract_features(model, lr, [deep], batch_size=len(lr), return_outputs=True, device="cpu")
    measured = _peak_rss_bytes() - before
    estimated = len(lr) * (footprint.activation_bytes + 4 * (footprint.output_numel + NUM_FEAT))
    assert result.outputs.shape == (16, 96, 96, 3)
    assert measured <= estimated, (measured / 2**20, estimated / 2**20)


# -- the batch-size rule through a run -----------------------------------------------------------


def _suite(root: Path, expected_memory_gib: float | None, pooling: str = "gap") -> Path:
    images = root / "images"
    if not images.exists():
        images.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):
            PILImage.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
        save_model(root / "model.safetensors", _model(), "MSRResNet", ARCH_KWARGS)
    suite = {
        "name": "memory",
        "data": {"source": str(images), "patch_size": 32, "patches_per_image": 4, "eval_split": "all"},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0},
                                                    {"type": "bicubic", "scale": 2}]}],
        "models": [{"path": str(root / "model.safetensors"), "as": "model"}],
        "pooling": pooling,
        "metrics": [{"type": "chi", "label": "degradation", "bootstrap": 0}, {"type": "psnr", "bootstrap": 0}],
        "outputs": {"tsne_plots": False, "html": False},
        "runtime": {"batch_size": 16, "cache": False}
        | ({"expected_memory_gib": expected_memory_gib} if expected_memory_gib else {}),
    }
    path = root / f"suite-{expected_memory_gib}-{pooling}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _budget_for_batch(plan: dict, batch: float) -> float:
    """The expected memory (GiB) at which the rule allows exactly ``batch`` patches."""
    held = plan["held_mib"] * 2**20
    return (BASELINE_BYTES + held + batch * plan["per_patch_mib"] * 2**20) / GIB


def test_default_budget_keeps_the_requested_batch(tmp_path):
    result = run_suite(load_suite(_suite(tmp_path, None)), progress=False)
    plan = result.provenance["memory"]
    assert plan["batch_size"] == plan["requested_batch_size"] == 16
    assert plan["expected_memory_gib"] == 4.0
    assert plan["estimated_peak_mib"] <= 4 * 1024


def test_a_small_budget_picks_the_largest_batch_that_fits_and_changes_no_number(tmp_path):
    roomy = run_suite(load_suite(_suite(tmp_path, None)), progress=False)
    # a budget between what 5 and 6 patches need: the rule must pick 5
    budget = round(_budget_for_batch(roomy.provenance["memory"], 5.5), 6)
    tight = run_suite(load_suite(_suite(tmp_path, budget)), progress=False)
    plan = tight.provenance["memory"]
    assert plan["batch_size"] == 5
    assert plan["estimated_peak_mib"] <= budget * 1024
    assert [r.value for r in tight.rows] == pytest.approx([r.value for r in roomy.rows], rel=1e-5)


def test_flatten_pooling_is_counted_in_what_the_run_holds(tmp_path):
    gap = run_suite(load_suite(_suite(tmp_path, None, "gap")), progress=False).provenance["memory"]
    flat = run_suite(load_suite(_suite(tmp_path, None, "flatten")), progress=False).provenance["memory"]
    patches = 2 * 3 * 4  # sets x images x patches per image
    extra = patches * NUM_FEAT * (16 * 16 - 1) * 4  # flatten keeps C*h*w values per patch instead of C
    assert flat["held_mib"] - gap["held_mib"] == pytest.approx(extra / 2**20, abs=0.1)


def test_a_budget_nothing_fits_in_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    suite = _suite(tmp_path, 0.25)  # below the interpreter's own baseline
    with pytest.raises(UserError, match=r"runtime\.expected_memory_gib: 0\.25 GiB is less than"):
        run_suite(load_suite(suite), progress=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(suite), "-q"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and str(suite) in err
    assert not (tmp_path / "reports").exists()


# -- out of memory during a forward pass ---------------------------------------------------------


class _RefusesLargeBatches(nn.Module):
    """Raises what torch raises when an allocation fails, for batches larger than 2."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.error = error
        self.batch_sizes: list[int] = []

    def forward(self, x):
        self.batch_sizes.append(len(x))
        if len(x) > 2:
            raise self.error
        return self.conv(x)


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"),
    MemoryError(),
    RuntimeError("MPS backend out of memory (MPS allocated: 1.00 GB)"),
], ids=["cpu-allocator", "MemoryError", "mps"])
def test_out_of_memory_on_any_device_falls_back_to_smaller_batches(error):
    lr = np.random.default_rng(0).random((9, 6, 6, 3), dtype=np.float32)
    model = _RefusesLargeBatches(error)
    result = extract_features(model, lr, ["conv"], batch_size=8, device="cpu")
    assert model.batch_sizes[:3] == [8, 4, 2]
    with torch.no_grad():
        expected = model.conv(torch.from_numpy(lr).permute(0, 3, 1, 2)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(result.features["conv"], expected, rtol=1e-5, atol=1e-6)


def test_provenance_records_the_plan_in_the_report(tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(_suite(tmp_path, 2.0)), "--out", str(out), "-q"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    memory = json.loads((out / "results.json").read_text())["provenance"]["memory"]
    assert memory["expected_memory_gib"] == 2.0 and 1 <= memory["batch_size"] <= 16


# -- whole images: ddr-eval upscale --------------------------------------------------------------


def test_an_ordinary_image_is_upscaled_in_one_pass_and_a_huge_one_in_tiles():
    from ddr_eval.models.inference import upscale_tile_side

    model = _model()
    assert upscale_tile_side(model, (256, 256, 3), scale=2) is None
    tile = upscale_tile_side(model, (4000, 4000, 3), scale=2)
    assert tile is not None and tile % 4 == 0 and 64 <= tile < 4000


@pytest.fixture
def one_torch_thread():
    """Many tiny forward passes: on a busy machine, thread hand-offs would cost more than the convolutions."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiles_reproduce_the_whole_image_pass(monkeypatch, one_torch_thread):
    """MSRResNet with one block sees 5 LR pixels around each output pixel, less than the context."""
    import ddr_eval.models.inference as memory
    from ddr_eval.models.inference import super_resolve

    torch.manual_seed(0)
    model = build_arch("MSRResNet", num_feat=8, num_block=1, upscale=2).eval()
    image = np.random.default_rng(0).random((200, 160, 3), dtype=np.float32)
    whole = super_resolve(model, image)
    tiled = memory.super_resolve_in_tiles(model, image, scale=2, tile=48, context=8)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)

    # a budget where the whole image does not fit but 100x100 windows (tile + context) do
    per_pixel = memory.forward_footprint(model, (32, 32, 3), [], outputs=True).activation_bytes / 32**2
    arrays = image.size * 4 * (1 + 2 * 2 * 2)
    budget = (BASELINE_BYTES + arrays + per_pixel * 100**2) / GIB
    tiles = []
    spy = memory.super_resolve_in_tiles
    monkeypatch.setattr(memory, "super_resolve_in_tiles", lambda *a, **k: tiles.append(a[3]) or spy(*a, **k))
    np.testing.assert_allclose(memory.super_resolve_within_memory(model, image, 2, memory_gib=budget), whole,
                               atol=1e-5)
    assert tiles == [100 - 2 * memory.TILE_CONTEXT - (100 - 2 * memory.TILE_CONTEXT) % 4]


def test_an_image_too_large_even_for_tiles_is_refused():
    from ddr_eval.models.inference import upscale_tile_side

    with pytest.raises(UserError, match="too large to super-resolve within"):
        upscale_tile_side(_model(), (40000, 40000, 3), scale=2, memory_gib=1.0)
