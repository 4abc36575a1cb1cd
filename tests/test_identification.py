"""Degradation identification: the metric, the saved probe, and the image-statistics baseline."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from ddr_eval.core.errors import DegenerateInputError, UserError
from ddr_eval.features import IMAGE_STATISTIC_NAMES, image_statistics
from ddr_eval.metrics import (
    METRICS,
    DegradationProbe,
    IdentificationResult,
    build_metric,
)

CLASSES = ["blur", "clean", "jpeg", "noise"]


def separable_split(seed: int, n_per_class: int = 60, dim: int = 24, spread: float = 4.0):
    """Four Gaussian classes in ``dim`` dimensions; returns (train_X, train_y, test_X, test_y)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), dim)) * spread

    def draw():
        labels = np.repeat(CLASSES, n_per_class)
        codes = np.repeat(np.arange(len(CLASSES)), n_per_class)
        return centres[codes] + rng.normal(size=(codes.size, dim)), labels

    return (*draw(), *draw())


# ----------------------------------------------------------------------------- the metric


@pytest.mark.parametrize("spec", [{"classifier": "logistic"}, {"classifier": "knn", "k": 5}])
def test_probe_beats_chance_widely_on_separable_features(spec):
    train_X, train_y, test_X, test_y = separable_split(seed=0)
    result = build_metric({"type": "identification", "bootstrap": 100, **spec}).compute(
        train_X, train_y, test_X, test_y, seed=0
    )
    assert isinstance(result, IdentificationResult)
    assert result.accuracy > 0.95  # chance is 0.25
    assert result.macro_f1 > 0.95
    assert result.classes == CLASSES
    assert result.confusion.shape == (4, 4)
    assert result.confusion.sum() == len(test_y)
    assert np.trace(result.confusion) == round(result.accuracy * len(test_y))
    assert result.ci_low <= result.accuracy <= result.ci_high
    assert result.value == result.accuracy
    assert result.extra["chance"] == 0.25


def test_probe_is_near_chance_on_random_labels():
    train_X, _, test_X, _ = separable_split(seed=1)
    rng = np.random.default_rng(1)
    shuffled_train, shuffled_test = rng.choice(CLASSES, len(train_X)), rng.choice(CLASSES, len(test_X))
    result = build_metric({"type": "identification"}).compute(train_X, shuffled_train, test_X, shuffled_test, seed=0)
    assert result.accuracy < 0.45


def test_unseen_test_classes_count_as_errors_and_are_reported():
    train_X, train_y, test_X, test_y = separable_split(seed=2)
    test_y = test_y.astype(object)
    test_y[:10] = "ringing"
    result = build_metric({"type": "identification"}).compute(train_X, train_y, test_X, test_y, seed=0)
    assert "ringing" in result.classes and result.confusion.shape == (5, 5)
    assert result.confusion[result.classes.index("ringing")].sum() == 10
    assert np.diag(result.confusion)[result.classes.index("ringing")] == 0
    assert any("ringing" in w for w in result.extra["warnings"])


def test_identification_degenerate_inputs_raise():
    train_X, train_y, test_X, test_y = separable_split(seed=3)
    metric = build_metric({"type": "identification"})
    with pytest.raises(DegenerateInputError, match="distinct labels"):
        metric.compute(train_X, np.full(len(train_y), "clean"), test_X, test_y, seed=0)
    bad = test_X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DegenerateInputError, match="NaN"):
        metric.compute(train_X, train_y, bad, test_y, seed=0)
    with pytest.raises(DegenerateInputError, match="constant"):
        metric.compute(np.zeros_like(train_X), train_y, test_X, test_y, seed=0)
    with pytest.raises(DegenerateInputError, match="k=500"):
        build_metric({"type": "identification", "classifier": "knn", "k": 500}).compute(
            train_X, train_y, test_X, test_y, seed=0
        )


def test_identification_names_and_direction():
    assert build_metric({"type": "identification"}).name == "identification[logistic,C1]"
    assert build_metric({"type": "identification", "classifier": "knn", "k": 3}).name == "identification[knn,k3]"
    assert METRICS.get("identification").higher_is_better
    assert METRICS.get("identification").kind == "identification"
    with pytest.raises(UserError):
        build_metric({"type": "identification", "classifier": "svm"})


# ----------------------------------------------------------------------------- the probe


@pytest.mark.parametrize("classifier", ["logistic", "lda", "knn"])
def test_probe_save_load_round_trip(tmp_path, classifier):
    train_X, train_y, test_X, _ = separable_split(seed=4)
    probe = DegradationProbe(classifier, k=3, meta={"model": "srresnet", "layer": "body.15"}).fit(train_X, train_y)
    path = tmp_path / "probe.npz"
    probe.save(path)
    loaded = DegradationProbe.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(test_X), probe.predict_proba(test_X))
    np.testing.assert_array_equal(loaded.predict(test_X), probe.predict(test_X))
    assert loaded.classes_ == CLASSES
    assert loaded.meta == {"model": "srresnet", "layer": "body.15"}
    with np.load(path, allow_pickle=False) as stored:  # plain arrays only
        assert "classes" in stored.files


@pytest.mark.parametrize("n_classes", [2, 4])
def test_lda_probe_is_sklearns_shrinkage_lda(n_classes):
    """The saved linear rule gives the probabilities of sklearn's own LDA (softmax / sigmoid of
    its decision function), so nothing is lost by storing it as plain arrays."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.preprocessing import StandardScaler

    train_X, train_y, test_X, _ = separable_split(seed=7, spread=0.8)
    keep = np.isin(train_y, CLASSES[:n_classes])
    train_X, train_y = train_X[keep], train_y[keep]
    probe = DegradationProbe("lda").fit(train_X, train_y)
    scaler = StandardScaler().fit(train_X)
    reference = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(scaler.transform(train_X), train_y)
    np.testing.assert_allclose(probe.predict_proba(test_X), reference.predict_proba(scaler.transform(test_X)), atol=1e-8)


def test_probe_predicts_class_names_and_probabilities():
    train_X, train_y, test_X, test_y = separable_split(seed=5)
    probe = DegradationProbe().fit(train_X, train_y)
    proba = probe.predict_proba(test_X[:7])
    assert proba.shape == (7, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predicted = probe.predict(test_X[:7])
    assert set(predicted) <= set(CLASSES)
    np.testing.assert_array_equal(predicted, np.asarray(CLASSES)[proba.argmax(axis=1)])
    assert probe.predict(test_X[:1]).shape == (1,)  # one image is fine


def test_probe_misuse_raises_user_errors(tmp_path):
    train_X, train_y, test_X, _ = separable_split(seed=6)
    with pytest.raises(UserError, match="not fitted"):
        DegradationProbe().predict(test_X)
    with pytest.raises(UserError, match="classifier"):
        DegradationProbe("forest")
    probe = DegradationProbe().fit(train_X, train_y)
    with pytest.raises(UserError, match="expects 24 features"):
        probe.predict(test_X[:, :10])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a probe")
    with pytest.raises(UserError, match="garbage.npz"):
        DegradationProbe.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.array('{"format": "something-else", "version": 1}'))
    with pytest.raises(UserError, match="other.npz"):
        DegradationProbe.load(other)
    with pytest.raises(UserError, match="missing.npz"):
        DegradationProbe.load(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------- image statistics


def smooth_images(n: int, size: int = 32, seed: int = 0, smoothness: float = 2.0) -> np.ndarray:
    """Smooth random textures in [0.2, 0.8] (room for noise without clipping)."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, size, size, 3)), sigma=(0, smoothness, smoothness, 0))
    base = (base - base.min()) / (base.max() - base.min())
    return (0.2 + 0.6 * base).astype(np.float32)


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer), dtype=np.float32) / 255)
    return np.stack(out)


def test_image_statistics_shape_and_names():
    stats = image_statistics(smooth_images(5))
    assert stats.shape == (5, len(IMAGE_STATISTIC_NAMES)) == (5, 12)
    assert np.isfinite(stats).all()
    assert image_statistics((smooth_images(2) * 255).round().astype(np.uint8)).shape == (2, 12)


def column(name: str) -> int:
    return IMAGE_STATISTIC_NAMES.index(name)


def test_image_statistics_respond_to_their_degradations():
    clean = smooth_images(8, seed=1)
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(scale=0.05, size=clean.shape).astype(np.float32)
    blurred = gaussian_filter(clean, sigma=(0, 1.5, 1.5, 0))
    compressed = jpeg(clean, quality=10)
    s_clean, s_noisy, s_blur, s_jpeg = map(image_statistics, (clean, noisy, blurred, compressed))
    assert (s_noisy[:, column("noise_sigma")] > 0.03).all() and (s_clean[:, column("noise_sigma")] < 0.01).all()
    assert (s_blur[:, column("laplacian_var")] < s_clean[:, column("laplacian_var")]).all()
    assert (s_noisy[:, column("high_frequency_energy")] > s_clean[:, column("high_frequency_energy")]).all()
    assert (s_jpeg[:, column("blockiness")] > 1.2).all()
    assert (np.abs(s_clean[:, column("blockiness")] - 1) < 0.15).all()
    np.testing.assert_allclose(s_clean[:, :3], clean.astype(np.float64).mean(axis=(1, 2)), rtol=1e-9)


def test_image_statistics_baseline_identifies_simple_degradations():
    def degrade(images, kind, rng):
        if kind == "noise":
            return images + rng.normal(scale=0.05, size=images.shape).astype(np.float32)
        if kind == "blur":
            return gaussian_filter(images, sigma=(0, 1.5, 1.5, 0))
        if kind == "jpeg":
            return jpeg(images, quality=10)
        return images

    rng = np.random.default_rng(2)
    splits = []
    for seed in (10, 11):
        images = smooth_images(12, seed=seed, smoothness=1.0)
        features = np.concatenate([image_statistics(degrade(images, kind, rng)) for kind in CLASSES])
        splits += [features, np.repeat(CLASSES, 12)]
    result = build_metric({"type": "identification"}).compute(*splits, seed=0)
    assert result.accuracy > 0.9


def test_image_statistics_rejects_bad_input():
    with pytest.raises(UserError, match="NHWC RGB"):
        image_statistics(np.zeros((2, 8, 8)))
    with pytest.raises(DegenerateInputError, match="3x3"):
        image_statistics(np.zeros((2, 2, 8, 3)))
    with pytest.raises(DegenerateInputError, match="NaN"):
        image_statistics(np.full((1, 8, 8, 3), np.nan))


# ----------------------------------------------------------------------------- the seed's way: choose on train


def test_mean_std_pooling_is_mean_then_spread_per_channel():
    import torch

    from ddr_eval.features import extract_features

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    lr = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    both = extract_features(model, lr, ["0"], pooling="mean_std").features["0"]
    maps = model(torch.from_numpy(lr).permute(0, 3, 1, 2)).detach().numpy()
    assert both.shape == (5, 8)
    np.testing.assert_allclose(both[:, :4], maps.mean(axis=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(both[:, 4:], maps.std(axis=(2, 3)), atol=1e-5)


def _memorisable_split(n_images=20, per_image=10, dim=16, seed=0):
    """Each training photograph appears under one class only and its features are a
    photograph-specific vector with no class signal: only remembering pictures scores."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(size=(n_images, dim)) * 3
    image = np.repeat(np.arange(n_images), per_image)
    X = offsets[image] + rng.normal(size=(image.size, dim)) * 0.1
    y = np.asarray(CLASSES)[image % len(CLASSES)]
    return X, y, image


def test_cross_validation_folds_are_content_disjoint():
    X, y, image = _memorisable_split()
    metric = build_metric({"type": "identification", "classifier": "knn", "k": 3})
    grouped = metric.compute(X, y, X, y, seed=0, train_groups=image)
    ungrouped = metric.compute(X, y, X, y, seed=0)
    assert (grouped.extra["cv_folds"], grouped.extra["cv_grouped"], ungrouped.extra["cv_grouped"]) == (5, True, False)
    assert grouped.extra["cv_accuracy"] < 0.4  # chance is 0.25: pictures never seen cannot be remembered
    assert ungrouped.extra["cv_accuracy"] > 0.9  # stratified folds share pictures: memorising pays


def test_c_grid_is_chosen_on_the_training_split_and_named():
    train_X, train_y, test_X, test_y = separable_split(seed=4, spread=0.6)
    metric = build_metric({"type": "identification", "C": [10, 0.001, 1]})
    assert metric.name == "identification[logistic,C0.001-1-10]"
    result = metric.compute(train_X, train_y, test_X, test_y, seed=0)
    each = {c: build_metric({"type": "identification", "C": c}).compute(train_X, train_y, test_X, test_y, seed=0)
            for c in (0.001, 1.0, 10.0)}
    assert result.extra["cv_accuracy"] == max(r.extra["cv_accuracy"] for r in each.values())
    assert each[result.extra["C_chosen"]].extra["cv_accuracy"] == result.extra["cv_accuracy"]
    assert result.accuracy == each[result.extra["C_chosen"]].accuracy  # refitted at the chosen C
    with pytest.raises(UserError, match="C must be > 0"):
        build_metric({"type": "identification", "C": [1, -1]})
    with pytest.raises(UserError, match="cv_folds"):
        build_metric({"type": "identification", "cv_folds": 1})


def test_image_interval_of_test_accuracy_needs_groups():
    from ddr_eval.metrics.bootstrap import ImageGroups

    train_X, train_y, test_X, test_y = separable_split(seed=5, spread=0.5)
    groups = ImageGroups(np.arange(test_y.size) % 6, test_y)
    metric = build_metric({"type": "identification", "interval": "both", "bootstrap": 50})
    result = metric.compute(train_X, train_y, test_X, test_y, seed=0, test_groups=groups)
    assert result.n_source_images == 6
    assert result.ci_images[0] <= result.accuracy <= result.ci_images[1]
    with pytest.raises(UserError, match="source image"):
        metric.compute(train_X, train_y, test_X, test_y, seed=0)


class _TwoLayerInputs:
    """MetricInputs stand-in: layer ``a`` carries the class signal in its first half of dims, ``b``
    in none; the probe on both concatenated reads a 2 x dim input."""

    layers = ("a", "b")
    model = "two-layer"
    seed = 0

    def __init__(self):
        self.data = {split: separable_split(seed=6, spread=1.0)[:2] if split == "train" else separable_split(seed=6)[2:]
                     for split in ("train", "eval")}

    def stack(self, layer, split="eval"):
        from ddr_eval.metrics.base import Stacked

        X, y = self.data[split]
        X = X if layer == "a" else np.random.default_rng(1).normal(size=X.shape)
        return Stacked(X, {"degradation": y, "content": np.arange(y.size) % 8}, None)


def test_concat_probe_reads_every_layer_in_one_row():
    inputs = _TwoLayerInputs()
    per_layer = build_metric({"type": "identification", "cv_folds": 0}).reduce(inputs)
    concat = build_metric({"type": "identification", "concat": True}).reduce(inputs)
    assert [r.layer for r in per_layer.rows] == ["a", "b"]
    assert [r.layer for r in concat.rows] == ["a+b"] and concat.rows[0].extra["layers"] == ["a", "b"]
    assert concat.rows[0].extra["cv_accuracy"] > 0.8
    assert concat.rows[0].value > per_layer.rows[1].value + 0.3  # the noise layer alone is near chance
    only_b = build_metric({"type": "identification", "layers": ["b"], "cv_folds": 0}).reduce(inputs)
    assert [r.layer for r in only_b.rows] == ["b"] and only_b.rows[0].value == per_layer.rows[1].value
    with pytest.raises(UserError, match="two-layer has no layer 'deep'"):
        build_metric({"type": "identification", "layers": ["deep"]}).reduce(inputs)


def _identification_row(model, layer, test, cv, metric="identification[logistic,C1]"):
    from ddr_eval.results import ResultRow, RowScope

    return ResultRow(model=model, layer=layer, metric=metric, type="identification", kind="identification", set="all",
                     value=test, higher_is_better=True,
                     extra={"cv_accuracy": cv, "C_chosen": 1.0, "cv_folds": 5, "cv_grouped": True},
                     scope=RowScope.POOLED)


def _finding(rows, metrics=()):
    from types import SimpleNamespace

    from ddr_eval.findings import compute_findings
    from ddr_eval.config.findings_spec import FindingsSpec

    spec = FindingsSpec.model_validate({"identification": {"ddr": ["sr", "sr-sweep"], "baselines": ["stats"]}})
    result = SimpleNamespace(sources=[], rows=rows, suite=SimpleNamespace(pooling="gap"),
                             loaded=SimpleNamespace(metrics=metrics),
                             inputs=SimpleNamespace(eval_sets={"clean": SimpleNamespace(split="test")}))
    return compute_findings(result, spec)[0]


def test_finding_7_chooses_variants_by_training_split_cross_validation_only():
    from ddr_eval.findings import Verdict

    rows = [_identification_row("sr", "deep", test=0.80, cv=0.50),        # best on test, not chosen
            _identification_row("sr-sweep", "block0..block7 (8 layers)", test=0.60, cv=0.70),
            _identification_row("stats", "stats", test=0.65, cv=0.60)]
    finding = _finding(rows)
    assert finding.verdict == Verdict.NOT  # the chosen DDR probe (0.60) is below the chosen baseline (0.65)
    assert [row["chosen"] for row in finding.table] == ["yes", "", "yes"]
    assert finding.numbers["best_test"]["DDR"] == 0.80 and finding.numbers["variants"] == 3
    rows[1] = _identification_row("sr-sweep", "block0..block7 (8 layers)", test=0.70, cv=0.70)
    assert _finding(rows).verdict == Verdict.REPRODUCED


def test_finding_7_refuses_probes_without_cross_validation():
    rows = [_identification_row("sr", "deep", 0.8, None), _identification_row("sr-sweep", "deep", 0.8, 0.7),
            _identification_row("stats", "stats", 0.6, 0.6)]
    with pytest.raises(UserError, match="cv_folds >= 2"):
        _finding(rows)


TINY_PROBE = """
name: tiny-probe
seed: 0
data: {source: embedded, patch_size: 32, patches_per_image: 3, eval_split: test}
degradations:
  - {name: clean, chain: [{type: bicubic, scale: 2}]}
  - {name: blur, chain: [{type: gaussian_blur, sigma: [2.0, 3.0]}, {type: bicubic, scale: 2}]}
models:
  - srresnet-gr
  - {name: srresnet-gr, layers: [block3, deep], as: srresnet-gr-two}
  - {baseline: image_statistics}
layers: [deep]
metrics:
  - {type: identification, C: [0.1, 1], cv_folds: 3, bootstrap: 0, models: [srresnet-gr, image_statistics]}
  - {type: identification, pooling: mean_std, concat: true, cv_folds: 3, bootstrap: 0, models: [srresnet-gr-two]}
outputs: {tsne_plots: false, html: false}
findings:
  identification: {ddr: [srresnet-gr, srresnet-gr-two], baselines: [image_statistics]}
"""


def test_train_probe_ships_the_best_cross_validated_ddr_candidate(tmp_path):
    from ddr_eval.workflows.identify import Identifier, train_probe

    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "tiny-probe.yaml").write_text(TINY_PROBE)
    meta = train_probe("tiny-probe", root=tmp_path)
    ddr = [c for c in meta["candidates"] if c["role"] == "DDR"]
    assert {c["model"] for c in meta["candidates"]} == {"srresnet-gr", "srresnet-gr-two", "image_statistics"}
    assert meta["cv_accuracy"] == max(c["cv_accuracy"] for c in ddr)  # chosen on the training split, DDR only
    chosen = next(c for c in ddr if c["cv_accuracy"] == meta["cv_accuracy"])
    assert meta["model"] == chosen["model"] and meta["test_accuracy"] == chosen["test_accuracy"]
    assert meta["layers"] == (["block3", "deep"] if chosen["model"] == "srresnet-gr-two" else ["deep"])
    assert (tmp_path / "probes" / "tiny-probe.json").exists()

    image = tmp_path / "lr.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(image)
    found = Identifier("tiny-probe", root=tmp_path).identify(image)
    assert found.label in ("clean", "blur") and found.probability == max(found.probabilities.values())
    assert abs(sum(found.probabilities.values()) - 1) < 1e-3


def test_shipped_probe_identifies_a_photograph_through_the_cli(tmp_path, capsys):
    """The committed probe loads (its recipe still names its backbone) and `ddr-eval identify`
    prints one row per image with a shipped class."""
    import json as _json

    from ddr_eval.cli import main
    from ddr_eval.data.images import load_embedded
    from ddr_eval.workflows.identify import probe_dir

    meta = _json.loads((probe_dir() / "ddr-probe.json").read_text())
    photo = load_embedded(["chelsea"])[0].pixels[:64, :64]
    image = tmp_path / "lr.png"
    Image.fromarray((photo * 255).round().astype(np.uint8)).save(image)
    with pytest.raises(SystemExit) as info:
        main(["identify", str(image)])
    assert (info.value.code or 0) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(str(image)))
    assert line.split()[1] in meta["classes"]


def test_train_probe_and_identify_take_paths_and_a_checkpoint_backbone(tmp_path, monkeypatch, capsys):
    """`zoo train-probe RECIPE.yaml` (a recipe outside the zoo, its model a checkpoint beside it) writes the
    probe beside the recipe; `identify --probe PROBE.npz` reads it from any working directory."""
    from ddr_eval.cli import main
    from ddr_eval.models.archs import build_arch
    from ddr_eval.models.checkpoint import save_model

    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))
    mine = tmp_path / "mine"
    mine.mkdir()
    kwargs = dict(num_feat=8, num_block=2, upscale=2)
    torch.manual_seed(0)
    save_model(mine / "net.safetensors", build_arch("MSRResNet", **kwargs), "MSRResNet", kwargs)
    recipe = TINY_PROBE.replace("name: tiny-probe", "name: my-probe").replace(
        "  - srresnet-gr\n  - {name: srresnet-gr, layers: [block3, deep], as: srresnet-gr-two}",
        "  - {path: net.safetensors, as: srresnet-gr}\n"
        "  - {path: net.safetensors, layers: [block0, deep], as: srresnet-gr-two}")
    (mine / "my-probe.yaml").write_text(recipe)
    with pytest.raises(SystemExit) as info:
        main(["zoo", "train-probe", str(mine / "my-probe.yaml")])
    assert info.value.code == 0
    meta = json.loads((mine / "my-probe.json").read_text())
    assert meta["backbone"] == str(mine / "net.safetensors") and (mine / "my-probe.npz").is_file()

    image = tmp_path / "lr.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(image)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["identify", "--probe", str(mine / "my-probe.npz"), str(image)])
    assert info.value.code == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(str(image)))
    assert row.split()[1] in ("clean", "blur")
    with pytest.raises(SystemExit) as info:
        main(["identify", "--probe", str(mine / "absent.npz"), str(image)])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["zoo", "train-probe", "no-such-recipe"])
    assert info.value.code == 2
    assert "shipped recipes: ddr-probe" in capsys.readouterr().err
