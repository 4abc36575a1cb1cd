"""``ddr-eval bench --gpu`` on the CPU: the planning, timing and writing around the CUDA calls."""

import json
import os
import subprocess
import sys

import pytest
import torch

from ddr_eval.features.device import autocast_context
from ddr_eval_bench import gpu as bench_gpu

TINY = {"tiny-msrresnet": ("MSRResNet", {"num_feat": 8, "num_block": 1, "upscale": 2}),
        "tiny-rcan": ("RCAN", {"num_feat": 16, "num_group": 1, "num_block": 1, "upscale": 2})}


def test_the_matrix_is_every_shape_precision_and_layout():
    shapes = {**bench_gpu.zoo_shapes(), **bench_gpu.PUBLIC_SHAPES}
    cases = bench_gpu.plan_cases(shapes)
    assert len(cases) == len(shapes) * 3 * 2
    assert {(c.precision, c.channels_last) for c in cases} == {(p, last) for p in ("fp32", "bf16", "fp16")
                                                               for last in (False, True)}
    public = {c.name for c in cases} & set(bench_gpu.PUBLIC_SHAPES)
    assert public == {"MSRResNet-x4-64x16", "RRDBNet-x4-64x23", "EDSR-M-x4", "RCAN-x4"}
    assert {c.arch for c in cases} >= {"MSRResNet", "RRDBNet", "EDSR", "RCAN"}
    assert len({(c.arch, json.dumps(c.arch_kwargs, sort_keys=True)) for c in cases}) == len(shapes)  # no duplicates
    with pytest.raises(ValueError, match="fp8"):
        bench_gpu.plan_cases(TINY, precisions=["fp8"])


def test_median_seconds_uses_the_injected_timer_after_the_warmup():
    calls, ticks = [], iter([3.0, 1.0, 2.0])
    seconds = bench_gpu.median_seconds(lambda: calls.append(1), timer=lambda fn: (fn(), next(ticks))[1],
                                       repeats=3, warmup=2)
    assert seconds == 2.0 and len(calls) == 5


def test_run_on_cpu_writes_json_and_markdown(tmp_path):
    document = bench_gpu.run_gpu_bench(tmp_path, device="cpu", shapes=TINY, timer=bench_gpu.WallTimer(), patches=4,
                                       batch_size=2, lr_patch=8, repeats=1, precisions=["fp32", "fp16"],
                                       main_job=lambda: {"suite": "s.yaml", "device": "cpu", "seconds": 1.5})
    written = json.loads((tmp_path / "gpu.json").read_text())
    assert written == document and len(written["cases"]) == 2 * 2 * 2
    for case in written["cases"]:
        assert case["harness_patches_per_s"] > 0 and case["bare_patches_per_s"] > 0 and case["ratio"] > 0
        assert case["peak_memory_mib"] is None  # only CUDA has max_memory_allocated
    markdown = (tmp_path / "gpu.md").read_text()
    assert markdown.count("| tiny-") == 8 and "1.5 s" in markdown


def test_the_time_budget_skips_the_rest_and_says_so(tmp_path):
    clock = iter([0.0, 0.0, 100.0] + [100.0] * 20)
    document = bench_gpu.run_gpu_bench(tmp_path, device="cpu", shapes=TINY, timer=bench_gpu.WallTimer(), patches=2,
                                       batch_size=2, lr_patch=8, repeats=1, precisions=["fp32"], budget_s=10.0,
                                       main_job=lambda: {"seconds": None, "error": "no suite"},
                                       clock=lambda: next(clock))
    skipped = [c for c in document["cases"] if c.get("skipped")]
    assert len(document["cases"]) == 4 and len(skipped) == 3
    assert "time budget" in (tmp_path / "gpu.md").read_text()


def test_channels_last_and_autocast_paths_leave_features_unchanged_on_cpu():
    """On the CPU autocast is a no-op and channels_last only a layout: same numbers either way,
    and a model left in channels_last by one call is converted back by the next."""
    import numpy as np

    from ddr_eval.features.extract import extract_features
    from ddr_eval.models.archs import build_arch

    torch.manual_seed(0)
    model = build_arch("MSRResNet", num_feat=8, num_block=1, upscale=2)
    lr = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    plain = extract_features(model, lr, ["body"], device="cpu", return_outputs=True)
    fast = extract_features(model, lr, ["body"], device="cpu", amp_dtype="fp16", channels_last=True,
                            return_outputs=True)
    assert np.allclose(plain.features["body"], fast.features["body"], atol=1e-5)
    extract_features(model, lr, ["body"], device="cpu")
    assert next(model.parameters()).is_contiguous()
    with autocast_context("cpu", "bf16"):
        assert not torch.is_autocast_enabled()


def test_cli_without_cuda_prints_one_line_and_exits_0(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, "-m", "ddr_eval.cli", "bench", "--gpu", "--out", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DDR_EVAL_FEATURE_CACHE": str(tmp_path / "cache")})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert len(output.splitlines()) == 1 and "no CUDA" in output
    assert not (tmp_path / "out").exists()


def test_released_networks_come_first_at_their_lr_sizes(tmp_path):
    """The first GPU run measures the released networks (RRDB-23 at 64 and 128 px LR, SRVGG) before the
    zoo; a case's LR side comes from its name and its patch count keeps the pixels per case fixed."""
    names = list(bench_gpu.RELEASED_SHAPES)
    assert {"realesrgan-x4plus@64", "realesrgan-x4plus@128"} <= set(names)
    assert {bench_gpu.RELEASED_SHAPES[n][0] for n in names} == {"RRDBNet", "SRVGGNetCompact"}
    assert [bench_gpu.lr_side_of(n) for n in names] == [64, 128, 64, 128]
    assert bench_gpu.lr_side_of("RCAN-x4") == bench_gpu.LR_PATCH
    assert bench_gpu.patches_for(128, 256, 32) == 16 and bench_gpu.patches_for(32, 256, 32) == 256
    for name in names:  # every released shape builds (on the meta device: no memory)
        arch, kwargs = bench_gpu.RELEASED_SHAPES[name]
        with torch.device("meta"):
            from ddr_eval.models.archs import build_arch

            assert build_arch(arch, **kwargs).scale_factor == 4
    shapes = {"tiny@12": ("MSRResNet", {"num_feat": 8, "num_block": 1, "upscale": 2})}
    document = bench_gpu.run_gpu_bench(tmp_path, device="cpu", shapes=shapes, timer=bench_gpu.WallTimer(), patches=8,
                                       batch_size=2, lr_patch=6, repeats=1, precisions=["fp32"],
                                       main_job=lambda: {"seconds": 1.0})
    case = document["cases"][0]
    assert case["lr_patch"] == 12 and case["patches"] == 2  # 8 patches of 6 px -> 2 of 12 px
