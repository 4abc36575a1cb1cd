"""Efficiency metrics: parameters, FLOPs, latency and peak memory, and their rows in a suite run.

Expected numbers are derived here from layer shapes (parameter counts, multiply–accumulates,
tensor sizes), not copied from a run.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.metrics import METRICS, build_metric
from ddr_eval.metrics.efficiency import (
    MIB,
    FlopsMetric,
    LatencyMetric,
    ParamsMetric,
    PeakMemoryMetric,
    count_flops,
    count_parameters,
    efficiency_profile,
    example_input,
    peak_forward_bytes,
)
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import compile_suite

FLOAT = 4  # bytes of a float32


def two_convs() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))


def conv_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply–accumulates of the stride-1 'same' convolutions of ``model`` on one H x W input."""
    return sum(m.out_channels * height * width * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
               for m in model.modules() if isinstance(m, nn.Conv2d))


class Sleepy(nn.Module):
    """A forward pass that takes at least ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        time.sleep(self.seconds)
        return x * self.scale


def test_every_efficiency_metric_is_registered_lower_is_better():
    for name in ("params", "flops", "latency", "peak_memory"):
        cls = METRICS.get(name)
        assert cls.kind == "efficiency" and cls.higher_is_better is False


def test_parameter_count_matches_layer_shapes():
    expected = (3 * 8 * 9 + 8) + (8 * 4 * 9 + 4)
    assert count_parameters(two_convs()) == expected
    assert ParamsMetric().compute(two_convs()).value == expected


def test_flops_are_twice_the_convolution_macs():
    model = two_convs()
    total, by_op = count_flops(model, example_input(model, (16, 12, 3)))
    assert total == 2 * conv_macs(model, 16, 12)
    assert set(by_op) == {"aten.convolution"}


def test_flops_of_a_zoo_architecture_follow_its_convolutions():
    """MSRResNet without upsampling work beyond convolutions: every conv runs at a known size."""
    model = build_arch("MSRResNet", num_feat=8, num_block=2, upscale=2)
    metric = FlopsMetric().for_patch((10, 10, 3))
    body = [m for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and not name.startswith(("conv_hr", "conv_last"))]
    high = [model.conv_hr, model.conv_last]  # these run on the x2 upsampled map
    macs = sum(conv_macs(m, 10, 10) for m in body) + sum(conv_macs(m, 20, 20) for m in high)
    assert metric.compute(model, (10, 10, 3)).value == 2 * macs
    assert metric.name == "flops[10x10]"


def test_flops_per_patch_do_not_depend_on_batch_size():
    model = two_convs()
    one = FlopsMetric(input_size=(8, 8)).compute(model, (32, 32, 3)).value
    four = FlopsMetric(input_size=(8, 8), batch_size=4).compute(model, (32, 32, 3)).value
    assert one == four == 2 * conv_macs(model, 8, 8)


def test_peak_memory_on_cpu_is_weights_input_and_the_largest_pair_of_live_activations():
    """Sequential keeps a layer's input alive while the layer computes its output, so the peak
    is the larger of (conv1 out + relu out) and (relu out + conv2 out), on top of weights and input."""
    model = two_convs()
    x = example_input(model, (16, 16, 3))
    pixels = 16 * 16
    weights = count_parameters(model) * FLOAT
    live = max(8 * pixels + 8 * pixels, 8 * pixels + 4 * pixels) * FLOAT
    assert peak_forward_bytes(model, x)[0] == weights + 3 * pixels * FLOAT + live
    result = PeakMemoryMetric().compute(model, (16, 16, 3))
    assert result.value == pytest.approx((weights + 3 * pixels * FLOAT + live) / MIB)


def test_peak_memory_grows_with_the_batch():
    model = two_convs()
    one = PeakMemoryMetric().compute(model, (16, 16, 3)).value
    eight = PeakMemoryMetric(batch_size=8).compute(model, (16, 16, 3)).value
    weights = count_parameters(model) * FLOAT / MIB
    assert eight - weights == pytest.approx(8 * (one - weights))


def test_latency_is_milliseconds_per_patch_and_sees_a_slow_forward():
    slow = LatencyMetric(warmup=0, repeats=3, batch_size=2).compute(Sleepy(0.02), (4, 4, 3))
    assert slow.value >= 20.0 / 2
    fast = LatencyMetric(warmup=0, repeats=3, batch_size=2).compute(Sleepy(0.0), (4, 4, 3))
    assert fast.value < slow.value
    assert len(slow.extra["timings_ms"]) == 3


def test_measuring_leaves_the_module_in_training_mode_if_it_was():
    model = two_convs().train()
    for metric in (FlopsMetric(), LatencyMetric(repeats=1), PeakMemoryMetric()):
        metric.compute(model, (8, 8, 3))
        assert model.training


def test_names_state_input_size_and_batch():
    assert ParamsMetric().for_patch((32, 32, 3)).name == "params"
    assert build_metric({"type": "latency", "batch_size": 16}).for_patch((32, 24, 3)).name == "latency[32x24,b16]"
    assert PeakMemoryMetric(input_size=(64, 64)).for_patch((32, 32, 3)).name == "peak_memory[64x64]"


def test_bad_parameters_are_user_errors():
    with pytest.raises(UserError, match="batch_size"):
        build_metric({"type": "latency", "batch_size": 0})
    with pytest.raises(UserError, match="input size"):
        FlopsMetric(input_size=(0, 8)).compute(two_convs(), (8, 8, 3))


def test_profile_has_all_four_columns():
    profile = efficiency_profile(two_convs(), (8, 8, 3))
    assert set(profile) == {"params", "flops[8x8]", "latency[8x8]", "peak_memory[8x8]"}
    assert all(value > 0 for value in profile.values())


def test_suite_rows_and_leaderboard_columns(tmp_path):
    """Efficiency metrics in a suite: one row per network on layer 'model', set 'all', lower is
    better; a statistics baseline gets an empty row saying why."""
    kwargs = {"num_feat": 8, "num_block": 2, "upscale": 2}
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_model(path, build_arch("MSRResNet", **kwargs), "MSRResNet", kwargs)
    raw = {
        "name": "efficiency",
        "data": {"source": "embedded", "images": ["astronaut", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 3},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0},
                                                    {"type": "bicubic", "scale": 2}]}],
        "models": [{"path": str(path), "as": "tiny"}, {"baseline": "image_statistics"}],
        "metrics": [{"type": "chi", "projection": "raw", "bootstrap": 0}, {"type": "params"}, {"type": "flops"},
                    {"type": "latency", "repeats": 2}, {"type": "peak_memory"}],
        "runtime": {"device": "cpu"},
    }
    result = run_suite(compile_suite(raw, "efficiency-test"), use_cache=False, progress=False)
    rows = {(r.model, r.metric): r.to_dict() for r in result.rows if r.kind == "efficiency"}
    names = ["params", "flops[8x8]", "latency[8x8]", "peak_memory[8x8]"]
    assert set(rows) == {(model, name) for model in ("tiny", "image_statistics") for name in names}
    tiny = build_arch("MSRResNet", **kwargs)
    assert rows["tiny", "params"]["value"] == count_parameters(tiny)
    assert rows["tiny", "flops[8x8]"]["value"] == count_flops(tiny, example_input(tiny, (8, 8, 3)))[0]
    for name in names:
        assert rows["tiny", name]["layer"] == "model" and rows["tiny", name]["set"] == "all"
        assert rows["tiny", name]["higher_is_better"] is False and rows["tiny", name]["value"] > 0
        assert rows["image_statistics", name]["value"] is None
        assert rows["image_statistics", name]["status"].startswith("unavailable")
    columns = {c.metric: c for c in result.leaderboard.columns}
    assert set(names) <= set(columns)
    assert not any(columns[name].ranked for name in names)  # costs are shown, not ranked, unless a suite asks
    assert [columns[name].header for name in names] == ["params (M)", "flops[8x8] (GFLOPs)", "latency[8x8] (ms)",
                                                         "peak_memory[8x8] (MiB)"]
    tiny_board = result.leaderboard.row("tiny")
    assert tiny_board["flops[8x8]"] == pytest.approx(rows["tiny", "flops[8x8]"]["value"] / 1e9)


# --------------------------------------------------------------------------- ddr-eval bench


def _bench(name: str, param: str | None = None, **extra_info) -> dict:
    return {"name": f"{name}[{param}]" if param else name, "param": param, "params": {"name": param},
            "extra_info": extra_info}


def test_bench_summary_reports_missed_targets_and_partial_suites():
    from ddr_eval_bench.runner import summary_markdown

    document = {"benchmarks": [
        _bench("test_extraction_throughput_vs_bare_forward", "srcnn", arch="SRCNN", patches=128, patches_per_s=80.0,
               baseline_median_s=1.28, subject_median_s=1.6, ratio=0.8, meets_target=False),
        _bench("test_scaling", "tsne", phase="tsne", time_exponent=1.9, raw_time_exponent=2.0, max_time_exponent=1.6,
               memory_exponent=1.0, memory_measure="traced_mib",
               curve=[{"n": 250, "seconds": 1.0, "traced_mib": 2.0}, {"n": 500, "seconds": 3.7, "traced_mib": 4.0}]),
        _bench("test_generalization_suite_cold_and_warm", models=["srresnet-gr"], missing_models=["srcnn"],
               cold_s=30.0, warm_s=6.0, cold_target_s=60.0, warm_target_s=5.0, cpus=2, startup_s=3.0,
               metric_seconds={"silhouette[degradation,tsne]": 1.0, "srga[pca300]": 3.0}, tsne_share_of_metrics=0.25),
        _bench("test_someone_elses_benchmark", parallel_ratio=0.43),
    ]}
    text = summary_markdown(document)
    throughput = text.split("## Feature-extraction throughput")[1].split("##")[0]
    assert "| srcnn" in throughput and "**no**" in throughput and "100" in throughput  # 128 / 1.28 s bare
    scaling = text.split("## Scaling")[1].split("##")[0]
    assert "| tsne" in scaling and "**no**" in scaling
    suite = text.split("## End-to-end suite")[1].split("## Other")[0]
    assert "Partial suite" in suite and "srcnn" in suite
    cold, warm = (line for line in suite.splitlines() if line.startswith(("| cold", "| warm")))
    assert "yes" in cold and "**no**" in warm
    assert "t-SNE share: 25%" in suite
    others = text.split("## Other benchmarks")[1]  # a benchmark without a section is still listed
    assert "test_someone_elses_benchmark" in others and "parallel_ratio=0.43" in others


def test_benchmarks_stay_out_of_the_test_run():
    """`pytest` collects tests/ only, and no file in bench/ matches pytest's test-file patterns, so
    benchmarks run only through `pytest bench` (whose conftest collects bench_*.py)."""
    from ddr_eval_bench.runner import BENCH_DIR, ROOT

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests"]
    names = [path.name for path in BENCH_DIR.glob("*.py")]
    assert any(name.startswith("bench_") for name in names)
    assert not [name for name in names if name.startswith("test_") or name.endswith("_test.py")]


def test_bench_without_a_bench_directory_is_a_user_error(tmp_path):
    from ddr_eval_bench.runner import run_benchmarks

    with pytest.raises(UserError, match="no benchmarks"):
        run_benchmarks(tmp_path / "out", bench_dir=tmp_path)


def test_latency_runs_on_the_requested_cpu_threads_and_restores_the_setting():
    before = torch.get_num_threads()
    assert LatencyMetric(repeats=1).compute(two_convs(), (8, 8, 3)).extra["cpu_threads"] == 1
    assert LatencyMetric(repeats=1, threads=None).compute(two_convs(), (8, 8, 3)).extra["cpu_threads"] == before
    assert torch.get_num_threads() == before
