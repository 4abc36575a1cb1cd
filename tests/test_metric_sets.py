"""A metric's ``sets:`` (issue #18, finding 7 over seeds): the degradation sets it is computed on.

Checked at suite load; the reducer's view holds only those sets (both splits); the planner extracts
training-split cells only for them; the name and the result-cache key tell the metric apart from
the same metric on every set; a robustness run recomputes finding 7 on them for every seed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ddr_eval.data import PatchSet
from ddr_eval.core.errors import UserError
from ddr_eval.metrics import build_metric
from ddr_eval.metrics.base import UndeclaredInputError
from ddr_eval.metrics.separability import ChiMetric
from ddr_eval.pipeline.reduce import ModelInputs
from ddr_eval.pipeline.runner import plan_cells
from ddr_eval.config.loader import compile_suite

SETS = ("clean", "blur", "noise", "jpeg")


def _suite(metrics, **extra) -> dict:
    return {"name": "sets", "seed": 0, "reference": "clean",
            "data": {"source": "embedded", "patch_size": 16, "patches_per_image": 2, "eval_split": "test"},
            "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                             {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": [1, 3, 2]}},
                                                        {"type": "bicubic", "scale": 2}]},
                             {"name": "noise", "chain": [{"type": "bicubic", "scale": 2},
                                                         {"type": "gaussian_noise", "sigma": 25}]},
                             {"name": "jpeg", "chain": [{"type": "bicubic", "scale": 2}, {"type": "jpeg", "quality": 10}]}],
            "models": [{"baseline": "image_statistics"}], "metrics": metrics,
            "outputs": {"tsne_plots": False, "html": False}, **extra}


# --------------------------------------------------------------------------- suite load, names, cache keys


def test_sets_name_sets_of_the_suite_after_sweep_expansion():
    loaded = compile_suite(_suite([{"type": "chi"}, {"type": "chi", "sets": ["clean", "blur_sigma3"]}]), "s.yaml")
    assert loaded.metrics[1].sets == ("clean", "blur_sigma3")
    with pytest.raises(UserError, match=r"^s\.yaml: metrics\[1\]\.sets: 'blur' is not a degradation set of the suite"):
        compile_suite(_suite([{"type": "chi"}, {"type": "chi", "sets": ["clean", "blur"]}]), "s.yaml")
    with pytest.raises(UserError, match=r"metrics\[0\]\.sets: 'blur_sigma2' .*did you mean 'blur_sigma(1|3)'"):
        compile_suite(_suite([{"type": "chi", "sets": ["blur_sigma2"]}]), "s.yaml")
    with pytest.raises(UserError, match=r"metrics\[0\]\.sets.*at least one"):
        compile_suite(_suite([{"type": "chi", "sets": []}]), "s.yaml")
    with pytest.raises(UserError, match=r"metrics\[0\]\.sets.*twice"):
        compile_suite(_suite([{"type": "chi", "sets": ["clean", "clean"]}]), "s.yaml")


def test_two_metrics_of_one_name_on_other_sets_are_refused():
    """Same type, same parameters, the same number of sets: one column, so they must be one task."""
    metrics = [{"type": "chi", "sets": ["clean", "noise"], "models": ["a"]},
               {"type": "chi", "sets": ["clean", "jpeg"], "models": ["b"]}]
    with pytest.raises(UserError, match=r"metrics\[1\]\.sets: chi\[degradation,raw,2 sets\] is also metrics\[0\]"):
        compile_suite(_suite(metrics), "s.yaml")
    metrics[1]["sets"] = ["noise", "clean"]  # the same sets, another order: fine
    compile_suite(_suite(metrics), "s.yaml")


def test_a_metric_on_sets_is_named_apart_and_cached_apart():
    from ddr_eval.pipeline.results_cache import ResultKeys

    every, some = build_metric({"type": "identification", "classifier": "lda"}), build_metric(
        {"type": "identification", "classifier": "lda", "sets": ["clean", "blur"]})
    assert (every.name, some.name) == ("identification[lda]", "identification[lda,2 sets]")
    assert build_metric({"type": "chi", "sets": ["blur"]}).name == "chi[degradation,raw,1 set]"
    dataset = SimpleNamespace(key="clean", lr=np.zeros((2, 4, 4, 3), np.float32), source_digest=None,
                              patches=PatchSet(None, np.zeros(2, np.int64), np.arange(2, dtype=np.int64), ("a",)))
    keys = ResultKeys(SimpleNamespace(eval_sets={"clean": dataset}, train_sets={"clean": dataset}), reference="clean",
                      seed=0, default_pooling="gap", scale=2)
    source = SimpleNamespace(label="m", identity="sha", layers={"deep": "body"})
    other = build_metric({"type": "identification", "classifier": "lda", "sets": ["clean", "noise"]})
    assert len({keys.key(every, source), keys.key(some, source), keys.key(other, source)}) == 3


# --------------------------------------------------------------------------- what the metric sees


def _view(metric, n: int = 12, seed: int = 0):
    """A ModelInputs view on four sets (suite order clean, blur, noise, jpeg) of 3-d features,
    set k shifted by 2k along axis 0, on both splits; two photographs per set."""
    rng = np.random.default_rng(seed)
    patches = PatchSet(None, np.repeat([0, 1], n // 2), np.arange(n, dtype=np.int64), ("a", "b"))
    features, inputs = {}, SimpleNamespace(eval_sets={}, train_sets={})
    for split, sets in (("test", inputs.eval_sets), ("train", inputs.train_sets)):
        for k, name in enumerate(SETS):
            sets[name] = SimpleNamespace(split=split, lr=np.zeros((n, 4, 4, 3)), patches=patches, has_hr=False)
            x = rng.normal(size=(n, 3))
            x[:, 0] += 2 * k
            for pooling in ("gap", "mean_std"):
                features[("m", split, name, pooling)] = SimpleNamespace(features={"body": x})
    reducer = SimpleNamespace(inputs=inputs, features=features, reference="clean", seed=seed, default_pooling="gap",
                              scale=2)
    source = SimpleNamespace(label="m", layers={"deep": "body"}, is_sr=False, descriptor=None)
    return ModelInputs(reducer, metric, source), features


def test_a_metric_with_sets_sees_only_those_sets_in_suite_order():
    metric = build_metric({"type": "identification", "sets": ["noise", "blur"]})
    view, _ = _view(metric)
    assert (view.sets, view.test_sets, view.reference) == (("blur", "noise"), ("blur", "noise"), "clean")
    for split in ("eval", "train"):
        stacked = view.stack("deep", split)
        assert list(dict.fromkeys(stacked.labels["degradation"])) == ["blur", "noise"]
        assert stacked.features.shape == (24, 3) and stacked.groups is not None and len(stacked.groups) == 24
    view.features("deep", "clean")  # the reference stays readable (generalization metrics compare with it)
    with pytest.raises(UndeclaredInputError, match="set `jpeg` outside its `sets`"):
        view.features("deep", "jpeg")
    with pytest.raises(UndeclaredInputError, match="set `jpeg`"):
        view.image_groups("jpeg")
    every, _ = _view(build_metric({"type": "identification"}))
    assert every.sets == SETS and every.test_sets == SETS[1:]
    assert [set(every.stack("deep", s).labels["degradation"]) for s in ("eval", "train")] == [set(SETS)] * 2


def test_identification_on_sets_has_exactly_those_classes():
    spec = {"type": "identification", "classifier": "lda", "cv_folds": 2, "bootstrap": 0}
    some = build_metric({**spec, "sets": ["clean", "noise", "jpeg"]})
    output = some.reduce(_view(some)[0])
    assert output.confusions[0]["classes"] == ["clean", "jpeg", "noise"]
    assert np.asarray(output.confusions[0]["matrix"]).sum() == 36  # 3 sets x 12 test patches
    every = build_metric(spec)
    assert sorted(every.reduce(_view(every)[0]).confusions[0]["classes"]) == sorted(SETS)


def test_chi_by_degradation_on_sets_is_chi_on_those_sets_by_hand():
    some = ChiMetric(projection="raw", bootstrap=0, sets=("blur", "jpeg"))
    view, features = _view(some)
    (row,) = some.reduce(view).rows
    x = np.concatenate([features[("m", "test", name, "gap")].features["body"] for name in ("blur", "jpeg")])
    by_hand = ChiMetric(projection="raw", bootstrap=0).compute(x, np.repeat(["blur", "jpeg"], 12), 0)
    assert row.value == pytest.approx(by_hand.value, rel=1e-12)
    (every,) = ChiMetric(projection="raw", bootstrap=0).reduce(_view(ChiMetric(projection="raw", bootstrap=0))[0]).rows
    assert every.value != pytest.approx(row.value)


def test_a_generalization_metric_on_sets_still_compares_with_the_reference():
    srga = {"type": "ddr_chi_to_reference", "bootstrap": 0}
    some, every = build_metric({**srga, "sets": ["noise"]}), build_metric(srga)
    rows = {r.set: r.value for r in some.reduce(_view(some)[0]).rows}
    all_rows = {r.set: r.value for r in every.reduce(_view(every)[0]).rows}
    assert set(rows) == {"noise", "mean"} and set(all_rows) == {"blur", "noise", "jpeg", "mean"}
    assert rows["noise"] == pytest.approx(all_rows["noise"]) and rows["mean"] == pytest.approx(rows["noise"])


# --------------------------------------------------------------------------- planning


def test_training_split_cells_are_planned_only_for_the_sets_read_in_each_pooling():
    source, other = SimpleNamespace(label="m"), SimpleNamespace(label="other")
    inputs = SimpleNamespace(eval_sets={n: SimpleNamespace(name=n, split="test") for n in SETS},
                             train_sets={n: SimpleNamespace(name=n, split="train") for n in SETS})
    metrics = [build_metric({"type": "chi"}),
               build_metric({"type": "identification", "pooling": "mean_std", "sets": ["clean", "blur"], "models": ["m"]}),
               build_metric({"type": "identification", "sets": ["blur", "jpeg"], "models": ["m"]})]
    cells = plan_cells([source, other], inputs, metrics, "gap")
    planned = {(c.source.label, c.dataset.split, c.dataset.name, c.pooling) for c in cells}
    train = {key for key in planned if key[1] == "train"}
    assert train == {("m", "train", "clean", "mean_std"), ("m", "train", "blur", "mean_std"),
                     ("m", "train", "blur", "gap"), ("m", "train", "jpeg", "gap")}
    # evaluated sets: every set in every pooling a metric reads, as without `sets:`
    assert {key for key in planned if key[1] == "test"} == {
        *(("m", "test", n, p) for n in SETS for p in ("gap", "mean_std")), *(("other", "test", n, "gap") for n in SETS)}


def test_sr_outputs_are_kept_only_for_the_sets_an_output_metric_reads_and_its_reference():
    source, other = SimpleNamespace(label="m"), SimpleNamespace(label="other")
    inputs = SimpleNamespace(eval_sets={n: SimpleNamespace(name=n, split="test") for n in SETS}, train_sets={})
    metrics = [build_metric({"type": "chi"}), build_metric({"type": "psnr", "sets": ["blur"], "models": ["m"]}),
               build_metric({"type": "psnr", "models": ["other"]})]
    cells = plan_cells([source, other], inputs, metrics, "gap", reference="clean")
    with_outputs = {(c.source.label, c.dataset.name) for c in cells if c.outputs}
    assert with_outputs == {("m", "clean"), ("m", "blur"), *(("other", n) for n in SETS)}


def test_a_run_extracts_the_training_split_only_for_a_metrics_sets(tmp_path):
    from ddr_eval.api import evaluate

    named = ["clean", "noise", "jpeg"]
    raw = _suite([{"type": "identification", "cv_folds": 2, "bootstrap": 0, "sets": named},
                  {"type": "chi", "projection": "raw", "bootstrap": 0}])
    run = evaluate(raw, cache_dir=tmp_path).run
    assert sorted(name for (_, split, name, _) in run.batches if split == "train") == sorted(named)
    assert sorted(name for (_, split, name, _) in run.batches if split == "test") == sorted(
        ["clean", "blur_sigma1", "blur_sigma3", "noise", "jpeg"])
    (confusion,) = run.confusions
    assert confusion["metric"] == "identification[logistic,C1,3 sets]" and confusion["classes"] == sorted(named)
    assert {r.metric for r in run.rows} == {"identification[logistic,C1,3 sets]", "chi[degradation,raw]"}


# --------------------------------------------------------------------------- finding 7 over seeds


def test_finding_7_refuses_probes_scored_on_different_sets():
    from ddr_eval.findings import compute_findings
    from ddr_eval.config.findings_spec import FindingsSpec
    from ddr_eval.results import ResultRow, RowScope

    metrics = [build_metric({"type": "identification", "sets": ["clean", "blur"]}), build_metric({"type": "identification"})]

    def row(model, metric):
        return ResultRow(model=model, layer="deep", metric=metric, type="identification", kind="identification",
                         set="all", value=0.5, higher_is_better=True, extra={"cv_accuracy": 0.5, "cv_folds": 5},
                         scope=RowScope.POOLED)

    spec = FindingsSpec.model_validate({"identification": {"ddr": ["sr"], "baselines": ["stats"]}})
    eval_sets = {n: SimpleNamespace(split="test") for n in SETS}
    result = SimpleNamespace(sources=[], suite=SimpleNamespace(pooling="gap"), loaded=SimpleNamespace(metrics=metrics),
                             inputs=SimpleNamespace(eval_sets=eval_sets),
                             rows=[row("sr", metrics[0].name), row("stats", metrics[1].name)])
    with pytest.raises(UserError, match=r"different degradation sets \(identification\[logistic,C1,2 sets\] on clean, "
                                        r"blur; identification\[logistic,C1\] on every set\)"):
        compute_findings(result, spec)
    result.rows[1] = row("stats", metrics[0].name)
    (finding,) = compute_findings(result, spec)
    assert finding.numbers["classes"] == ["clean", "blur"]


def test_a_robustness_run_recomputes_finding_7_per_seed_on_its_sets(tmp_path):
    """Finding 7 in a tiny robustness suite, run as ``ddr-eval run`` runs it: each seed's verdict,
    accuracies and chosen variants in the table over seeds, on the named classes only (not the 5
    evaluated sets)."""
    from ddr_eval.api import evaluate
    from ddr_eval.workflows.robustness import robustness_files, robustness_findings, run_robustness

    named = ["clean", "blur_sigma3", "noise", "jpeg"]  # suite order
    identification = {"cv_folds": 2, "bootstrap": 0, "sets": named}
    raw = _suite(
        [{"type": "identification", "classifier": "lda", "pooling": "mean_std", **identification, "models": ["srresnet-gr"]},
         {"type": "identification", **identification, "models": ["image_statistics"]},
         {"type": "identification", "classifier": "lda", **identification, "models": ["image_statistics"]}],
        findings={"bootstrap": 0, "identification": {"ddr": ["srresnet-gr"], "baselines": ["image_statistics"]},
                  "robustness": {"seeds": [0, 1], "reference": "clean", "strength": [{"sweep": "blur"}]}})
    raw["models"] = ["srresnet-gr", {"baseline": "image_statistics"}]
    raw["data"]["patch_size"] = 32
    loaded = compile_suite(raw, "tiny-robustness.yaml")
    robust = run_robustness(loaded, lambda seeded: evaluate(seeded, cache_dir=tmp_path).run)
    assert [run.suite.seed for run in robust.runs] == [0, 1]
    for run, seed in zip(robust.runs, (0, 1)):
        (own,) = robust.per_seed_findings[seed]
        assert own.key == "identification" and own.numbers["classes"] == named
        assert {tuple(c["classes"]) for c in run.confusions} == {tuple(sorted(named))}
    findings = robustness_findings(robust)
    (finding,) = [f for f in findings if f.key == "identification@seeds"]
    per_seed = [row for row in finding.table if row["seed"] in (0, 1)]
    assert [row["seed"] for row in per_seed] == [0, 1]
    for row, seed in zip(per_seed, (0, 1)):
        own = robust.per_seed_findings[seed][0]
        assert row["verdict"] == own.verdict == finding.numbers["verdicts"][str(seed)]
        assert row["ddr_accuracy"] == round(own.numbers["ddr_accuracy"], 4) and row["variants"] == 3
        assert row["chosen_ddr"] == "srresnet-gr / deep / identification[lda,mean_std,4 sets]"
        assert row["chosen_baseline"] == own.numbers["chosen_baseline"]
        assert row["chosen_baseline"].startswith("image_statistics / stats / identification[")
    summary = finding.table[-1]
    verdicts = [row["verdict"] for row in per_seed]
    assert summary["verdict"] == f"{verdicts.count(finding.verdict)}/2 {finding.verdict}"
    assert summary["chosen_ddr"] == "srresnet-gr / deep / identification[lda,mean_std,4 sets] (2/2)"
    accuracies = [row["ddr_accuracy"] for row in per_seed]
    assert summary["ddr_accuracy"].endswith(f"[{min(accuracies):.3g}, {max(accuracies):.3g}]")
    markdown = robustness_files(robust, findings)["robustness.md"]
    assert "| DDR identifies distortions, over seeds |" in markdown
    assert "finding 7 (identification) is recomputed in full per seed" in markdown
