"""Progress: cells weigh their forward-pass FLOPs; a bar only on a terminal, two lines in a log."""

from __future__ import annotations

import io

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ddr_eval.cache.store import FeatureCache
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.executors import LocalExecutor
from ddr_eval.pipeline.inputs import prepare_inputs
from ddr_eval.pipeline.models import build_sources
from ddr_eval.pipeline.progress import CellProgress, cell_costs, flops_per_input_pixel
from ddr_eval.pipeline.runner import plan_cells
from ddr_eval.config.loader import compile_suite

SMALL = {"num_feat": 4, "num_block": 1, "upscale": 2}
LARGE = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 3, "num_grow_ch": 8, "scale": 2}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _flops(module: torch.nn.Module, side: int) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 3, side, side))
    return counter.get_total_flops()


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """A small and a 60x larger network on the same two degradation sets, plus the statistics baseline."""
    root = tmp_path_factory.mktemp("progress")
    models = []
    for arch, kwargs in (("MSRResNet", SMALL), ("RRDBNet", LARGE)):
        torch.manual_seed(0)
        path = root / f"{arch}.safetensors"
        save_model(path, build_arch(arch, **kwargs), arch, kwargs)
        models.append({"path": str(path), "as": arch.lower()})
    raw = {
        "name": "progress", "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "camera"], "eval_split": "all", "patch_size": 24,
                 "patches_per_image": 2},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]}],
        "models": [*models, {"baseline": "image_statistics"}],
        "layers": ["deep"],
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0}],
    }
    loaded = compile_suite(raw, "progress-test")
    suite = loaded.suite
    sources = build_sources(suite.models, suite.layers, loaded.scale, suite.seed)
    return plan_cells(sources, prepare_inputs(loaded, need_train=False), loaded.metrics, suite.pooling)


def test_flops_per_pixel_scales_a_small_probe_to_the_patch_exactly():
    module = build_arch("RRDBNet", **LARGE).eval()
    assert flops_per_input_pixel(module, 3, 12) * 12 * 12 == pytest.approx(_flops(module, 12))
    assert flops_per_input_pixel(module, 3, 40) * 40 * 40 == pytest.approx(_flops(module, 40))


def test_cells_weigh_their_models_forward_flops(cells):
    costs = cell_costs(cells)
    by_label = {}
    for cell, cost in zip(cells, costs):
        by_label.setdefault(cell.source.label, []).append(cost)
    small, large = sum(by_label["msrresnet"]), sum(by_label["rrdbnet"])
    lr = cells[0].dataset.lr
    small_module = next(c.source.descriptor.module for c in cells if c.source.label == "msrresnet")
    large_module = next(c.source.descriptor.module for c in cells if c.source.label == "rrdbnet")
    expected = _flops(large_module, lr.shape[1]) / _flops(small_module, lr.shape[1])
    assert large / small == pytest.approx(expected, rel=1e-6)
    assert expected > 10  # a count of cells would have said 1
    assert sum(by_label["image_statistics"]) < small / 10  # no network: a few passes over the pixels


def test_a_log_gets_a_start_and_an_end_line_and_no_carriage_returns(cells):
    stream = io.StringIO()
    with CellProgress(cells, enabled=True, stream=stream) as progress:
        progress.advance(range(len(cells)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith(f"features: {len(cells)} cells, ") and "FLOP of forward passes" in lines[0]
    assert lines[1].startswith("features: done in ")


def test_a_terminal_gets_a_bar_whose_total_drops_cached_cells(cells):
    stream = _Terminal()
    costs = cell_costs(cells)
    with CellProgress(cells, enabled=True, stream=stream) as progress:
        assert progress.bar.total == pytest.approx(sum(costs) / 1e9)
        progress.advance([0], computed=False)
        assert progress.bar.total == pytest.approx((sum(costs) - costs[0]) / 1e9)
        progress.advance([1])
        assert progress.bar.n == pytest.approx(costs[1] / 1e9)
    assert "GFLOP" in stream.getvalue()


def test_disabled_progress_writes_nothing(cells, tmp_path, capsys):
    LocalExecutor(progress=False)(cells, FeatureCache(tmp_path, enabled=False), 8, "cpu", None)
    assert capsys.readouterr().err == ""
