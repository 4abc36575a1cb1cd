"""The feature cache stores what metrics need: pooled features and SR outputs, not flattened maps.

Flattened maps (C*H*W values a patch) are read only by metrics such as SRGA, whose results the
results cache keeps, so they are computed when needed and never written; a warm run plans no
flattened cell at all, and its numbers equal an uncached run's.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ddr_eval.cache.store import cache_entries
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.cells import FLATTEN
from ddr_eval.pipeline.runner import RESULTS_SUBDIR, run_suite
from ddr_eval.config.loader import compile_suite

TINY = {"num_feat": 8, "num_block": 2, "upscale": 2}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("footprint")
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = root / f"tiny-{seed}.safetensors"
        save_model(path, build_arch("MSRResNet", **TINY), "MSRResNet", TINY)
        models.append({"path": str(path), "as": f"tiny-{seed}"})
    return {
        "name": "footprint", "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "chelsea", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 4},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]}],
        "models": models,
        "metrics": [{"type": "chi", "bootstrap": 0}, {"type": "srga", "pca_dim": 4}, {"type": "psnr"}],
        "outputs": {"tsne_plots": False, "html": False},
    }


def _values(result) -> dict:
    return {(r.model, r.layer, r.metric, r.set): r.value for r in result.rows}


def _feature_arrays(cache_dir) -> list[int]:
    """The widest feature array (values a patch) of every feature entry in the cache."""
    widths = []
    for path, _ in cache_entries(cache_dir):
        if RESULTS_SUBDIR in path.parts or "inputs" in path.parts:
            continue
        with np.load(path) as data:
            widths += [int(np.prod(data[name].shape[1:])) for name in data.files
                       if not name.startswith("__") and data[name].ndim >= 2]
    return widths


@pytest.mark.parametrize("with_findings", [False, True])
def test_flattened_maps_are_computed_but_not_stored_and_numbers_do_not_change(raw, tmp_path, with_findings):
    raw = copy.deepcopy(raw)
    if with_findings:  # findings read pooled features directly: those stay planned on warm runs
        raw["findings"] = {"adversarial": {"pairs": [["tiny-1", "tiny-2"]], "sets": ["clean", "blur"]}}
    loaded = compile_suite(raw, "footprint.yaml")
    uncached = run_suite(loaded, use_cache=False, progress=False)
    assert any(key.pooling == FLATTEN for key in uncached.batches)  # SRGA did read flattened maps

    cold = run_suite(loaded, cache_dir=tmp_path, progress=False)
    assert max(_feature_arrays(tmp_path)) == TINY["num_feat"]  # pooled (one value a channel), no C*H*W map
    warm = run_suite(loaded, cache_dir=tmp_path, progress=False)
    assert not any(key.pooling == FLATTEN for key in warm.batches)  # SRGA's result came from the results cache
    assert warm.provenance["cache"]["misses"] == 0
    for result in (cold, warm):
        assert _values(result).keys() == _values(uncached).keys()
        for key, value in _values(uncached).items():
            assert _values(result)[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
