"""The cluster bootstrap over source images, stratified by degradation set (``interval:``).

Patches cut from one photograph are alike, so an interval over patches pretends to more
independent samples than there are; the image interval resamples whole photographs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddr_eval.core.errors import UserError
from ddr_eval.metrics import ChiMetric, PsnrMetric, SrgaMetric
from ddr_eval.metrics.bootstrap import (
    ImageGroups,
    bootstrap_mean_interval,
    cluster_bootstrap_indices,
    cluster_bootstrap_mean_interval,
    cluster_bootstrap_weights,
    image_bootstrap_rng,
)
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.results import RowScope
from ddr_eval.config.loader import compile_suite

TINY_SR = {"num_feat": 8, "num_block": 2, "upscale": 2}


def _design(sizes_by_set: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(image, stratum) labels of sets whose images have the given patch counts."""
    images, strata = [], []
    for name, sizes in sizes_by_set.items():
        for index, size in enumerate(sizes):
            images += [f"photo{index}"] * size
            strata += [name] * size
    return np.asarray(images), np.asarray(strata)


def _correlated(n_sets=3, n_images=4, per_image=32, seed=0):
    """Features where a photograph's patches share a large offset: strongly correlated within images."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0, 3.0, (n_sets, n_images, 8))
    shifts = rng.normal(0, 1.0, (n_sets, 1, 8))
    x = (shifts + offsets)[:, :, None, :] + rng.normal(0, 0.3, (n_sets, n_images, per_image, 8))
    sets = np.repeat([f"set{s}" for s in range(n_sets)], n_images * per_image)
    images = np.tile(np.repeat([f"photo{i}" for i in range(n_images)], per_image), n_sets)
    return x.reshape(-1, 8), sets, ImageGroups(images, sets)


def test_indices_take_whole_images_and_keep_every_sets_image_count():
    images, strata = _design({"clean": [3, 5, 2, 4], "blur": [4, 4, 4]})
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows = cluster_bootstrap_indices(images, strata, rng)
        for name, n_images in (("clean", 4), ("blur", 3)):
            picked = rows[strata[rows] == name]
            drawn = {}
            for photo in np.unique(images[picked]):
                members = np.flatnonzero((images == photo) & (strata == name))
                copies, rest = divmod(int(np.isin(picked, members).sum()), members.size)
                assert rest == 0  # an image comes with all its patches, or not at all
                drawn[photo] = copies
            assert sum(drawn.values()) == n_images  # the set keeps its number of images


def test_weights_are_whole_image_counts_and_match_the_design():
    images, strata = _design({"clean": [3, 5, 2, 4], "blur": [4, 4, 4]})
    weights = cluster_bootstrap_weights(images, strata, 50, np.random.default_rng(1))
    assert weights.shape == (50, images.size)
    for name, n_images in (("clean", 4), ("blur", 3)):
        for replicate in weights:
            per_image = {}
            for photo in np.unique(images[strata == name]):
                member = (images == photo) & (strata == name)
                assert np.unique(replicate[member]).size == 1  # one count per image
                per_image[photo] = int(replicate[member][0])
            assert sum(per_image.values()) == n_images


def test_resampling_is_deterministic_for_a_seed():
    images, strata = _design({"clean": [4] * 4, "blur": [4] * 4})
    first = cluster_bootstrap_weights(images, strata, 30, image_bootstrap_rng(7))
    np.testing.assert_array_equal(first, cluster_bootstrap_weights(images, strata, 30, image_bootstrap_rng(7)))
    assert not np.array_equal(first, cluster_bootstrap_weights(images, strata, 30, image_bootstrap_rng(8)))
    np.testing.assert_array_equal(cluster_bootstrap_indices(images, strata, image_bootstrap_rng(7)),
                                  cluster_bootstrap_indices(images, strata, image_bootstrap_rng(7)))
    x, sets, groups = _correlated()
    runs = [ChiMetric(projection="raw", bootstrap=50, interval="images").compute(x, sets, 5, groups=groups)
            for _ in range(2)]
    assert (runs[0].ci_low, runs[0].ci_high) == (runs[1].ci_low, runs[1].ci_high)


def test_correlated_patches_make_the_image_interval_wider_than_the_patch_interval():
    x, sets, groups = _correlated()
    result = ChiMetric(projection="raw", bootstrap=200, interval="both").compute(x, sets, 0, groups=groups)
    (low, high), (image_low, image_high) = (result.ci_low, result.ci_high), result.ci_images
    assert image_high - image_low > 3 * (high - low)
    assert result.n_source_images == 4

    rng = np.random.default_rng(0)
    per_patch = np.repeat(rng.normal(30, 3, 4), 32) + rng.normal(0, 0.2, 128)  # e.g. PSNR of 4 photos' patches
    photos = np.repeat(np.arange(4), 32)
    patch_low, patch_high = bootstrap_mean_interval(per_patch, 200, np.random.default_rng(0))
    image_low, image_high = cluster_bootstrap_mean_interval(per_patch, photos, None, 200, np.random.default_rng(0))
    assert image_high - image_low > 3 * (patch_high - patch_low)
    assert cluster_bootstrap_mean_interval(per_patch, np.zeros(128), None, 200, rng) == (None, None)  # one photo


def test_both_keeps_the_patch_interval_and_images_matches_its_image_interval():
    x, sets, groups = _correlated()
    by = {interval: ChiMetric(projection="raw", bootstrap=40, interval=interval).compute(x, sets, 3, groups=groups)
          for interval in ("patches", "images", "both")}
    assert (by["both"].ci_low, by["both"].ci_high) == (by["patches"].ci_low, by["patches"].ci_high)
    assert by["both"].ci_images == (by["images"].ci_low, by["images"].ci_high)
    assert by["patches"].ci_images is None and by["patches"].n_source_images is None
    assert by["images"].ci_images is None and by["images"].n_source_images == 4
    assert ChiMetric(projection="raw", bootstrap=40).compute(x, sets, 3).ci_low == by["patches"].ci_low  # no groups
    with pytest.raises(UserError, match="interval=images"):
        ChiMetric(projection="raw", interval="images").compute(x, sets, 3)


def test_srga_image_interval_resamples_each_sets_images():
    rng = np.random.default_rng(0)
    reference = np.repeat(rng.normal(0, 1, (4, 12)), 10, axis=0) + rng.normal(0, 0.1, (40, 12))
    test = np.repeat(rng.normal(0, 2, (4, 12)), 10, axis=0) + rng.normal(0, 0.1, (40, 12))
    photos = np.repeat([f"p{i}" for i in range(4)], 10)
    metric = SrgaMetric(pca_dim=4, bootstrap=15, interval="both")
    result = metric.compute(reference, test, 0, groups=ImageGroups.pair(photos, photos))
    assert result.value == SrgaMetric(pca_dim=4).compute(reference, test, 0).value
    assert None not in result.ci_images and result.n_source_images == 4


@pytest.fixture(scope="module")
def suite_raw(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("cluster") / "tiny.safetensors"
    torch.manual_seed(0)
    save_model(path, build_arch("MSRResNet", **TINY_SR), "MSRResNet", TINY_SR)
    return {
        "name": "cluster-bootstrap", "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "chelsea", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 6},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
        ],
        "models": [{"path": str(path), "as": "tiny"}],
        "metrics": [],
        "runtime": {"device": "cpu"},
    }


def _rows(raw: dict, metrics: list[dict], tmp_path) -> list:
    loaded = compile_suite({**raw, "metrics": metrics}, "cluster-test")
    return run_suite(loaded, cache_dir=tmp_path, progress=False).rows


def test_the_pipeline_hands_metrics_the_source_images_and_rows_record_n_images(suite_raw, tmp_path):
    specs = [{"type": "chi", "projection": "raw", "bootstrap": 30}, {"type": "psnr", "bootstrap": 30},
             {"type": "ddr_chi_to_reference", "pca_dim": 4, "bootstrap": 30}]
    patches = _rows(suite_raw, specs, tmp_path)
    both = _rows(suite_raw, [{**spec, "interval": "both"} for spec in specs], tmp_path)
    images = _rows(suite_raw, [{**spec, "interval": "images"} for spec in specs], tmp_path)
    assert [r.key for r in both] == [r.key for r in patches] == [r.key for r in images]
    for plain, with_images, only_images in zip(patches, both, images):
        assert "ci_images" not in plain.extra and "n_images" not in plain.extra
        assert (with_images.value, with_images.ci_low, with_images.ci_high) == (plain.value, plain.ci_low,
                                                                                plain.ci_high)
        if with_images.scope is RowScope.SUMMARY:  # summaries aggregate values; they have no interval
            continue
        assert with_images.extra["n_images"] == only_images.extra["n_images"] == 3  # 3 photographs
        assert with_images.extra["ci_images"] == [only_images.ci_low, only_images.ci_high]
        assert "ci_images" not in only_images.extra
    assert any(r.extra["ci_images"][0] is not None for r in both if r.scope is not RowScope.SUMMARY)


def test_psnr_direct_call_with_groups_matches_the_pipeline_convention():
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    photos = np.repeat(["a", "b", "c", "d"], 2)
    result = PsnrMetric(interval="both", bootstrap=20).compute(sr, hr, seed=1,
                                                               groups=ImageGroups(photos, np.full(8, "blur")))
    assert result.n_source_images == 4 and len(result.ci_images) == 2
    assert result.extra["n_images"] == 8  # the per-image scores (SR outputs), as before
