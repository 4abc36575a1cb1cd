"""Where the findings hold (issue #18): strength ranges, crossovers, sample-size stability, and
finding 1's direction along a strength sweep on the shipped zoo."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ddr_eval.core.errors import UserError
from ddr_eval.findings import FindingContext, Verdict
from ddr_eval.workflows.robustness import (
    LevelPoint,
    RobustnessResult,
    crossover,
    stable_from,
    strength_findings,
    strength_points,
    strength_range,
)
from ddr_eval.results.run import FeatureKey, RunResult
from ddr_eval.config.findings_spec import FindingsSpec
from ddr_eval.config.loader import compile_suite
from ddr_eval.config.schema import Suite

# --------------------------------------------------------------------------- pure rules


def test_strength_range_names_the_weakest_level_it_holds_from():
    xs = [0.5, 1.0, 1.5, 2.0]
    assert strength_range(xs, [False, False, True, True], "blur sigma") == "for blur sigma >= 1.5, not below"
    assert strength_range(xs, [True, True, False, False], "blur sigma") == "for blur sigma <= 1, not above"
    assert strength_range(xs, [True] * 4, "blur sigma").startswith("at every blur sigma")
    assert strength_range(xs, [False] * 4, "blur sigma").startswith("at no blur sigma")
    assert strength_range(xs, [True, False, True, False], "blur sigma") == "at blur sigma 0.5, 1.5 only"


def test_strength_range_where_a_lower_value_is_stronger():
    # JPEG: quality 10 is the strongest; holding at 50, 30 and 10 is "quality <= 50"
    assert strength_range([10, 30, 50, 70, 90], [True, True, True, False, False], "JPEG quality",
                          stronger="lower") == "for JPEG quality <= 50, not below"


def test_crossover_interpolates_where_the_ratio_crosses_one():
    assert crossover([1, 2, 3], [0.5, 0.5, 2.0]) == pytest.approx(2.5)
    assert crossover([1, 2, 3], [2.0, 3.0, 4.0]) is None


def test_stable_from_is_the_first_size_whose_spread_stays_within_tolerance():
    sizes = [32, 64, 128, 256]
    values = [[1.0, 2.0], [1.0, 1.05], [1.0, 1.3], [1.0, 1.02]]  # 64 is within, 128 is not again
    assert stable_from(sizes, values, 0.1) == 256
    assert stable_from(sizes, [[1.0, 1.01]] * 4, 0.1) == 32
    assert stable_from(sizes, [[1.0, 2.0]] * 4, 0.1) is None


# --------------------------------------------------------------------------- a known crossover


def _blur_sweep_suite(name: str, model: str, strengths, seed: int) -> Suite:
    """A suite with a clean set and a blur sweep over ``strengths``, for stand-in runs."""
    return Suite.model_validate({
        "name": name, "seed": seed, "reference": "clean", "models": [model], "metrics": [{"type": "chi"}],
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": list(strengths)}},
                                                    {"type": "bicubic", "scale": 2}]}]})


def _stand_in_run(suite: Suite, spec: FindingsSpec, features: dict, sets: dict, models) -> RunResult:
    """A RunResult with the given features (every model's layer ``deep`` reads ``body``), stand-ins
    for the loaded suite, its models and its inputs."""
    return RunResult(SimpleNamespace(suite=suite, findings=spec), [], [], {}, {},
                     sources=[SimpleNamespace(label=m, layers={"deep": "body"}) for m in models],
                     batches={FeatureKey(*key): batch for key, batch in features.items()},
                     inputs=SimpleNamespace(eval_sets=sets))


def _synthetic_run(strengths, content_shift: float, n: int = 400, seed: int = 0):
    """Features of an 'SR net' with two source images (content shift fixed along axis 0) and, per
    strength s, a degraded set shifted by s along axis 1 from the clean set; unit Gaussian noise.
    The two effects are symmetric, so CHI by degradation exceeds CHI by content exactly when s >
    content_shift: that is the crossover the findings must find."""
    rng = np.random.default_rng(seed)
    suite = _blur_sweep_suite("synthetic", "sr", strengths, seed)
    image_index = np.repeat([0, 1], n // 2)
    patches = SimpleNamespace(image_names=("a", "b"), image_index=image_index,
                              patch_image_names=np.asarray(["a", "b"])[image_index])
    content = np.where(image_index == 0, -content_shift / 2, content_shift / 2)
    features, sets = {}, {}
    for d in suite.degradations:
        shift = 0.0 if d.sweep is None else d.sweep.value
        x = rng.normal(size=(n, 3))
        x[:, 0] += content
        x[:, 1] += shift
        features[("sr", "test", d.name, "gap")] = SimpleNamespace(features={"body": x})
        sets[d.name] = SimpleNamespace(split="test", patches=patches)
    spec = FindingsSpec.model_validate({"bootstrap": 0, "robustness": {
        "seeds": [seed], "reference": "clean", "strength": [{"sweep": "blur"}],
        "sr_vs_classification": {"sr": ["sr"], "classification": []}}})
    return _stand_in_run(suite, spec, features, sets, ["sr"]), spec


def test_a_degradation_effect_growing_against_a_fixed_content_effect_crosses_where_they_are_equal():
    result, spec = _synthetic_run([0.5, 4, 0.5], content_shift=2.25)
    points = strength_points(result, spec.robustness, FindingContext(result, spec))
    xs = [p.x for p in points]
    ratios = [p.values["sr"] for p in points]
    assert xs == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert crossover(xs, ratios) == pytest.approx(2.25, abs=0.2)
    robust = RobustnessResult([result], spec.robustness, {}, points)
    (finding,) = strength_findings(robust)
    assert "for blur sigma >= 2.5, not below" in finding.summary
    assert finding.verdict == "partly reproduced"


def _global_residual_run(strengths, n: int = 400, seed: int = 0):
    """Features of a finished GR net, its matched-fit snapshot and a no-GR net: at strength x the
    degraded set sits 2x, x and 0.5 (fixed) from the clean set (unit Gaussian noise),
    so the CHI ratio finished / no-GR is about (4x)^2 and matched / no-GR about (2x)^2: >= 10 from
    x = 1 and from x = 2 respectively, on the levels [0.5, 1, 2, 3]."""
    rng = np.random.default_rng(seed)
    suite = _blur_sweep_suite("gr-synthetic", "gr", strengths, seed)
    patches = SimpleNamespace(image_names=("a", "b"), image_index=np.repeat([0, 1], n // 2),
                              patch_image_names=np.repeat(["a", "b"], n // 2))
    shift = {"gr": lambda x: 2 * x, "gr@250": lambda x: x, "nogr": lambda x: 0.5}
    features, sets = {}, {}
    for d in suite.degradations:
        for model, along in shift.items():
            x = rng.normal(size=(n, 1))  # one dimension: CHI of standardized features is then scale-free
            if d.sweep is not None:
                x[:, 0] += along(d.sweep.value)
            features[(model, "test", d.name, "gap")] = SimpleNamespace(features={"body": x})
        sets[d.name] = SimpleNamespace(split="test", patches=patches)
    spec = FindingsSpec.model_validate({"bootstrap": 0, "robustness": {
        "seeds": [seed], "reference": "clean", "strength": [{"sweep": "blur", "label": "blur sigma"}],
        "global_residual": {"with": "gr", "without": "nogr", "matched_fit": "gr@250"}}})
    return _stand_in_run(suite, spec, features, sets, shift), spec


def test_finding_1_over_strength_says_which_half_of_its_rule_holds_where():
    result, spec = _global_residual_run([0.5, 3, 0.5])
    points = strength_points(result, spec.robustness, FindingContext(result, spec))
    finished, matched = "finished gr / nogr >= 10x", "matched fit gr@250 / nogr >= 10x"
    by_x = {p.x: p for p in points}
    assert [by_x[x].parts[finished] for x in (0.5, 1.0, 2.0, 3.0)] == [False, True, True, True]
    assert [by_x[x].parts[matched] for x in (0.5, 1.0, 2.0, 3.0)] == [False, False, True, True]
    (finding,) = strength_findings(RobustnessResult([result], spec.robustness, {}, points))
    assert "for blur sigma >= 2, not below" in finding.summary  # both halves: the finding itself
    assert f"{finished}: for blur sigma >= 1, not below" in finding.summary
    parts = finding.numbers["parts"]["blur sigma"]
    assert parts[finished] == "for blur sigma >= 1, not below"
    assert parts[matched] == "for blur sigma >= 2, not below"
    row = next(r for r in finding.table if r["level"] == 1.0)
    assert (row["holds"], row[f"seeds: {finished}"], row[f"seeds: {matched}"]) == (False, "1/1", "0/1")


def test_strength_verdict_needs_the_required_number_of_seeds():
    spec = FindingsSpec.model_validate({"robustness": {
        "seeds": [0, 1, 2], "reference": "clean", "strength": [{"sweep": "blur"}],
        "sr_vs_classification": {"sr": ["sr"], "classification": []}}}).robustness
    run = SimpleNamespace(suite=Suite.model_validate({
        "name": "s", "models": ["sr"], "metrics": [{"type": "chi"}],
        "degradations": [{"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": [1, 2, 1]}}]}]}))
    verdicts = {1.0: ["reproduced", "not reproduced", "not reproduced"], 2.0: ["reproduced", "reproduced", "not reproduced"]}
    points = [LevelPoint("sr_vs_classification", "blur", x, f"blur_sigma{x:g}", seed, v, {"sr": 1.5})
              for x, vs in verdicts.items() for seed, v in enumerate(vs)]
    (finding,) = strength_findings(RobustnessResult([run], spec, {}, points))
    assert "for blur sigma >= 2, not below" in finding.summary  # 2 of 3 seeds at sigma 2, 1 of 3 at sigma 1
    assert [row["holds"] for row in finding.table] == [False, True]


def test_robustness_sweep_names_are_checked_before_the_run():
    raw = {"name": "r", "models": ["srresnet-gr"], "metrics": [{"type": "chi"}],
           "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]}],
           "findings": {"robustness": {"seeds": [0], "reference": "clean", "strength": [{"sweep": "blur"}]}}}
    with pytest.raises(UserError, match="strength.0..sweep: 'blur' is not a swept set"):
        compile_suite(raw)


# --------------------------------------------------------------------------- the shipped zoo


def test_finding_1_direction_holds_along_the_strength_sweep_on_the_shipped_zoo(tmp_path):
    """CHI by degradation (clean vs each level) is higher with the global residual than without,
    at every blur and noise level: few patches, one seed."""
    from ddr_eval.api import evaluate

    raw = {"name": "gr-sweep", "seed": 0, "reference": "clean",
           "data": {"patch_size": 64, "patches_per_image": 4},
           "degradations": [
               {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
               {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": [1, 4, 1.5]}},
                                          {"type": "bicubic", "scale": 2}]},
               {"name": "noise", "chain": [{"type": "bicubic", "scale": 2},
                                           {"type": "gaussian_noise", "sigma": {"sweep": [5, 25, 10]}}]}],
           "models": ["srresnet-gr", "srresnet-nogr"], "metrics": [{"type": "chi", "projection": "raw", "bootstrap": 0}],
           "findings": {"bootstrap": 0, "global_residual": {"with": "srresnet-gr", "without": "srresnet-nogr",
                                                            "sets": ["clean", "blur_sigma1"]},
                        "robustness": {"seeds": [0], "reference": "clean",
                                       "strength": [{"sweep": "blur"}, {"sweep": "noise"}],
                                       "global_residual": {"with": "srresnet-gr", "without": "srresnet-nogr"}}}}
    run = evaluate(raw, cache_dir=tmp_path).run
    points = strength_points(run, run.loaded.findings.robustness)
    assert [(p.group, p.x) for p in points] == [("blur", 1.0), ("blur", 2.5), ("blur", 4.0),
                                                ("noise", 5.0), ("noise", 15.0), ("noise", 25.0)]
    for p in points:
        assert p.values["srresnet-gr"] > p.values["srresnet-nogr"], (p.set, p.values)
    # the direction is not the verdict: without the matched-fit snapshot the rule asks for >= 10x
    assert any(p.verdict == Verdict.REPRODUCED for p in points)


# --------------------------------------------------------------------------- image bootstrap by content


@pytest.mark.parametrize("metric", ["chi", "silhouette", "davies_bouldin"])
def test_content_image_bootstrap_leaves_out_resamples_that_miss_a_photograph_without_warnings(metric):
    """By content, a cluster resample over photographs (within each set) can miss a photograph in
    every set: an empty class. Those replicates are left out before any index is computed (no
    'invalid value' RuntimeWarning, no NaN), counted in the row's extra, and the interval is the
    one of the complete replicates only."""
    import warnings

    from ddr_eval.metrics import METRICS
    from ddr_eval.metrics.bootstrap import ImageGroups, cluster_bootstrap_weights, image_bootstrap_rng
    from ddr_eval.metrics.results import image_interval_fields
    from ddr_eval.metrics.separability import _one_hot

    rng = np.random.default_rng(0)
    per_set = np.repeat(np.arange(4), 8)  # 4 photographs x 8 patches, in 2 sets: often one is missed in both
    images = np.concatenate([per_set, per_set]).astype(str)
    strata = np.repeat(["clean", "blur"], per_set.size)
    x = rng.normal(size=(images.size, 5))
    x[:, 0] += images.astype(int)
    m = METRICS.get(metric)(projection="raw", bootstrap=200, interval="both")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = m.compute(x, images, 0, groups=ImageGroups(images, strata))
    codes = np.unique(images, return_inverse=True)[1]
    weights = cluster_bootstrap_weights(images, strata, 200, image_bootstrap_rng(0))
    complete = ((weights @ _one_hot(codes, 4)) > 0).all(axis=1)
    assert 0 < (~complete).sum() < 200
    assert result.extra["bootstrap_dropped_images"] == int((~complete).sum())
    assert image_interval_fields(result)["bootstrap_dropped_images"] == int((~complete).sum())
    assert all(np.isfinite(result.ci_images))
    assert result.ci_images[0] <= result.value <= result.ci_images[1] or metric == "silhouette"


def test_cache_state_says_cold_only_when_nothing_came_from_an_earlier_run():
    from ddr_eval.workflows.robustness import cache_state

    assert cache_state({"hits": 0, "misses": 723}).startswith("cold")
    # a snapshot equal to the finished checkpoint reads back the entry this run wrote: still cold
    assert cache_state({"hits": 75, "misses": 648, "repeats": 75}).startswith("cold")
    assert cache_state({"hits": 723, "misses": 0}).startswith("warm")
    assert cache_state({"hits": 0, "misses": 723, "results_hits": 3}).startswith("partly warm")
    assert cache_state({"hits": 100, "misses": 623, "repeats": 75}).startswith("partly warm: 25 of 723")


def test_a_store_counts_hits_on_entries_this_process_wrote_as_repeats(tmp_path):
    from ddr_eval.cache.store import ENTRY_RECORD, FeatureCache, entry_record, write_npz_atomic
    from ddr_eval.features.extract import FeatureBatch

    batch = FeatureBatch(features={"body": np.ones((2, 3), dtype=np.float32)}, outputs=None)
    first = FeatureCache(tmp_path)
    assert first.get("ab" * 32) is None
    first.put("ab" * 32, batch)
    assert first.get("ab" * 32) is not None
    assert (first.hits, first.misses, first.repeats) == (1, 1, 1)
    second = FeatureCache(tmp_path)  # another run in this process (a seed, a sample-size run): still this run's
    assert second.get("ab" * 32) is not None
    assert (second.hits, second.repeats) == (1, 1)
    earlier = FeatureCache(tmp_path)  # an entry some earlier process wrote: a real hit
    arrays = {"body": np.ones((2, 3), dtype=np.float32)}
    write_npz_atomic(earlier._path("cd" * 32), {**arrays, ENTRY_RECORD: entry_record(FeatureCache.kind, arrays)})
    assert earlier.get("cd" * 32) is not None
    assert (earlier.hits, earlier.repeats) == (1, 0)


def test_sample_size_points_are_the_metrics_on_the_first_patches_of_each_photograph(tmp_path):
    """The sample-size run is read at every size by the pipeline's reduce stage on the first
    ``size / images`` patches of every photograph: its numbers equal the metrics computed directly
    on those features, and a smaller size gives other numbers than the full draw."""
    from ddr_eval.api import evaluate
    from ddr_eval.config.findings_spec import SampleSizeSpec
    from ddr_eval.metrics.separability import ChiMetric, SilhouetteMetric
    from ddr_eval.metrics.srga import SrgaMetric
    from ddr_eval.workflows.robustness import sample_size_points, sample_size_suite

    spec = SampleSizeSpec(sizes=(8, 24), models=("srresnet-gr",), sets=("clean", "blur", "noise"))
    raw = {"name": "sized", "seed": 3, "reference": "clean", "data": {"patch_size": 32, "patches_per_image": 2},
           "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
                            {"name": "noise", "chain": [{"type": "bicubic", "scale": 2},
                                                        {"type": "gaussian_noise", "sigma": 20}]}],
           "models": ["srresnet-gr"], "metrics": [{"type": "srga", "pca_dim": 20}], "findings": {"bootstrap": 0}}
    run = evaluate(sample_size_suite(compile_suite(raw, "sized.yaml"), spec, 3), cache_dir=tmp_path).run
    points = sample_size_points(run, spec, 3)
    assert [p["patches per set"] for p in points] == [8, 24]
    source = run.source("srresnet-gr")
    layer, module = next(iter(source.layers.items()))
    n_images = len(run.degraded_set("clean").patches.image_names)
    for point in points:
        keep = {name: run.degraded_set(name).patches.patch_index < point["patches per set"] // n_images
                for name in spec.sets}
        x = np.concatenate([run.features("srresnet-gr", layer, name)[keep[name]] for name in spec.sets])
        y = np.concatenate([[name] * int(keep[name].sum()) for name in spec.sets])
        assert point["chi"] == pytest.approx(ChiMetric(projection="raw", bootstrap=0).compute(x, y, 3).value, rel=1e-9)
        assert point["silhouette"] == pytest.approx(
            SilhouetteMetric(projection="pca", bootstrap=0).compute(x, y, 3).value, rel=1e-6)
        flat = {name: run.feature_batch("srresnet-gr", name, pooling="flatten").features[module][keep[name]]
                for name in spec.sets}
        srga = SrgaMetric(pca_dim=20)
        expected = np.mean([srga.compute(flat["clean"], flat[t], 3).value for t in ("blur", "noise")])
        assert point["srga"] == pytest.approx(expected, rel=1e-9)
    assert points[0]["chi"] != points[1]["chi"]
