"""Separability metrics (CHI, silhouette, Davies–Bouldin), projections, registry plumbing."""

import numpy as np
import pydantic
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from ddr_eval.core.errors import DegenerateInputError, UserError
from ddr_eval.metrics import METRICS, MetricResult, build_metric, layer_sweep, project, standardize, tsne_embedding
from ddr_eval.metrics.separability import (
    bootstrap_weights,
    weighted_calinski_harabasz,
    weighted_davies_bouldin,
    weighted_silhouette,
)

N_CLASSES = 4
N_SAMPLES = 400
DIM = 16


def blobs(separation: float, seed: int = 0, n: int = N_SAMPLES, dim: int = DIM):
    """Gaussian classes with unit noise whose centres are ``separation`` apart in scale."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array([f"deg{i}" for i in range(N_CLASSES)]), n // N_CLASSES)
    centres = rng.normal(size=(N_CLASSES, dim)) * separation
    codes = np.unique(labels, return_inverse=True)[1]
    return centres[codes] + rng.normal(size=(n, dim)), labels


@pytest.fixture(scope="module")
def separated():
    return blobs(separation=6.0)


@pytest.fixture(scope="module")
def identical():
    return blobs(separation=0.0)


def metric(name, **params):
    return build_metric({"type": name, "bootstrap": 60, **params})


# ----------------------------------------------------------------------------- known structure


@pytest.mark.parametrize("projection", ["raw", "pca"])
def test_chi_high_for_separated_and_near_zero_for_identical(separated, identical, projection):
    chi = metric("chi", projection=projection, pca_dim=8)
    high = chi.compute(*separated, seed=0).value
    low = chi.compute(*identical, seed=0).value
    assert high > 100
    assert low < 5


def test_silhouette_near_one_for_far_apart_and_near_zero_for_identical(identical):
    sil = metric("silhouette", projection="raw")
    assert sil.compute(*blobs(separation=50.0), seed=0).value > 0.9
    assert abs(sil.compute(*identical, seed=0).value) < 0.05


def test_davies_bouldin_lower_for_separated(separated, identical):
    db = metric("davies_bouldin", projection="raw")
    separated_value = db.compute(*separated, seed=0).value
    identical_value = db.compute(*identical, seed=0).value
    assert separated_value < 0.5 < 3 < identical_value


@pytest.mark.parametrize("name", ["chi", "silhouette", "davies_bouldin"])
@pytest.mark.parametrize("which", ["separated", "identical"])
def test_bootstrap_interval_contains_point_estimate(name, which, request):
    features, labels = request.getfixturevalue(which)
    result = metric(name, projection="pca", pca_dim=8).compute(features, labels, seed=3)
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= result.value <= result.ci_high
    assert result.ci_high > result.ci_low


def test_bootstrap_disabled_gives_no_interval(separated):
    result = build_metric({"type": "chi", "bootstrap": 0}).compute(*separated, seed=0)
    assert result.ci_low is None and result.ci_high is None


def test_same_seed_same_result_and_seed_changes_interval(separated):
    chi = metric("chi")
    first, again, other = (chi.compute(*separated, seed=s) for s in (1, 1, 2))
    assert (first.value, first.ci_low, first.ci_high) == (again.value, again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


# ----------------------------------------------------------------------------- weighted forms


@pytest.fixture(scope="module")
def small_projected():
    features, labels = blobs(separation=1.0, n=120, dim=5, seed=7)
    return standardize(features), np.unique(labels, return_inverse=True)[1]


def test_weighted_scores_match_sklearn_on_unit_weights(small_projected):
    x, codes = small_projected
    ones = np.ones((1, codes.size))
    assert weighted_calinski_harabasz(x, codes, ones)[0] == pytest.approx(calinski_harabasz_score(x, codes), rel=1e-9)
    assert weighted_davies_bouldin(x, codes, ones)[0] == pytest.approx(davies_bouldin_score(x, codes), rel=1e-9)
    assert weighted_silhouette(cdist(x, x), codes, ones)[0] == pytest.approx(silhouette_score(x, codes), rel=1e-9)


def test_weighted_chi_and_db_equal_the_materialised_resample(small_projected):
    x, codes = small_projected
    rng = np.random.default_rng(0)
    weights = bootstrap_weights(codes, 3, rng)
    for w in weights:
        rows = np.repeat(np.arange(codes.size), w)
        assert weighted_calinski_harabasz(x, codes, w[None])[0] == pytest.approx(
            calinski_harabasz_score(x[rows], codes[rows]), rel=1e-9
        )
        assert weighted_davies_bouldin(x, codes, w[None])[0] == pytest.approx(
            davies_bouldin_score(x[rows], codes[rows]), rel=1e-9
        )


def test_weighted_silhouette_ignores_copies_of_the_same_patch(small_projected):
    """Per-point loop: a(i) over members that are other patches, b(i) over weighted classes."""
    x, codes = small_projected
    distances = cdist(x, x)
    w = bootstrap_weights(codes, 1, np.random.default_rng(1))[0]
    total, weight_sum = 0.0, 0
    for i in np.flatnonzero(w):
        same = (codes == codes[i]) & (np.arange(codes.size) != i)
        a = (w[same] * distances[i, same]).sum() / w[same].sum()
        b = min(
            (w[codes == c] * distances[i, codes == c]).sum() / w[codes == c].sum()
            for c in np.unique(codes)
            if c != codes[i]
        )
        total += w[i] * (b - a) / max(a, b)
        weight_sum += w[i]
    assert weighted_silhouette(distances, codes, w[None])[0] == pytest.approx(total / weight_sum, rel=1e-9)


def test_bootstrap_weights_keep_class_sizes():
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    weights = bootstrap_weights(codes, 50, np.random.default_rng(0))
    for c in range(3):
        assert (weights[:, codes == c].sum(axis=1) == (codes == c).sum()).all()


# ----------------------------------------------------------------------------- projections


def test_standardize_gives_zero_mean_unit_variance(separated):
    z = standardize(separated[0] * 50 + 3)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-9)


def test_pca_dim_clipped_with_warning():
    features, labels = blobs(separation=3.0, dim=6)
    result = metric("chi", projection="pca", pca_dim=50).compute(features, labels, seed=0)
    assert result.extra["dim"] == 6
    assert any("clipped from 50 to 6" in w for w in result.extra["warnings"])
    assert project(features, "pca", 50, 0).shape == (N_SAMPLES, 6)


def test_tsne_embedding_is_seeded_2d_and_keeps_clusters():
    features, labels = blobs(separation=6.0, n=100, dim=8, seed=2)
    first = tsne_embedding(features, seed=0, perplexity=15)
    assert first.shape == (100, 2)
    assert silhouette_score(first, labels) > 0.5
    chi = build_metric({"type": "chi", "projection": "tsne", "perplexity": 15, "bootstrap": 20})
    result = chi.compute(features, labels, seed=0)
    assert result.extra["dim"] == 2
    np.testing.assert_array_equal(result.extra["embedding"], first)  # same seed, same embedding
    assert result.value == pytest.approx(calinski_harabasz_score(first, labels))


# ----------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize("name", ["chi", "silhouette", "davies_bouldin"])
def test_degenerate_inputs_raise(name, separated):
    features, labels = separated
    m = metric(name)
    with pytest.raises(DegenerateInputError, match="distinct labels"):
        m.compute(features, np.zeros(len(labels)), seed=0)
    with_nan = features.copy()
    with_nan[3, 2] = np.nan
    with pytest.raises(DegenerateInputError, match="NaN"):
        m.compute(with_nan, labels, seed=0)
    with pytest.raises(DegenerateInputError, match="constant"):
        m.compute(np.ones_like(features), labels, seed=0)
    with pytest.raises(DegenerateInputError, match="labels"):
        m.compute(features, labels[:-1], seed=0)
    with pytest.raises(DegenerateInputError):
        m.compute(features[:3], np.array(["a", "b", "c"]), seed=0)  # one sample per class


def test_chi_of_collapsed_classes_raises():
    features = np.repeat(np.eye(3), 5, axis=0)
    labels = np.repeat(["a", "b", "c"], 5)
    with pytest.raises(DegenerateInputError, match="single point"):
        metric("chi", projection="raw").compute(features, labels, seed=0)


def test_davies_bouldin_with_coinciding_centroids_raises():
    features = np.array([[-1.0, 0], [1, 0], [0, -1], [0, 1]] * 3)
    labels = np.array(["a", "a", "b", "b"] * 3)
    with pytest.raises(DegenerateInputError, match="centroids coincide"):
        metric("davies_bouldin", projection="raw").compute(features, labels, seed=0)


# ----------------------------------------------------------------------------- registry, names


def test_registered_directions_and_kinds():
    assert METRICS.get("chi").higher_is_better and METRICS.get("silhouette").higher_is_better
    assert not METRICS.get("davies_bouldin").higher_is_better
    for name in ("chi", "silhouette", "davies_bouldin"):
        assert METRICS.get(name).kind == "separability"
        assert METRICS.get(name)().aggregation == "mean" and not METRICS.get(name).per_set


def test_names_include_distinguishing_params():
    assert build_metric({"type": "chi"}).name == "chi[degradation,raw]"  # the default the API and monitor share
    assert build_metric({"type": "chi", "projection": "pca"}).name == "chi[degradation,pca50]"
    assert build_metric({"type": "chi", "label": "content", "projection": "raw"}).name == "chi[content,raw]"
    assert build_metric({"type": "silhouette", "projection": "tsne"}).name == "silhouette[degradation,tsne]"
    assert build_metric({"type": "davies_bouldin", "projection": "pca", "pca_dim": 20}).name == \
        "davies_bouldin[degradation,pca20]"


def test_bad_specs_raise_user_errors():
    with pytest.raises(UserError, match="unknown metric"):
        build_metric({"type": "chii"})
    with pytest.raises(UserError, match="pca_dimm"):
        build_metric({"type": "chi", "pca_dimm": 3})
    with pytest.raises(UserError, match="projection"):
        build_metric({"type": "chi", "projection": "umap"})
    with pytest.raises(UserError, match="bootstrap"):
        build_metric({"type": "chi", "bootstrap": -1})
    spec = build_metric({"type": "chi", "label": "content"}).spec()
    assert build_metric(spec) == build_metric({"type": "chi", "label": "content"})


def test_metrics_are_frozen():
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        build_metric({"type": "chi"}).pca_dim = 3


def test_layer_sweep_scores_each_layer(separated, identical):
    features_by_layer = {"body.0": identical[0], "body.9": separated[0]}
    results = layer_sweep(features_by_layer, separated[1], metric("chi"), seed=0)
    assert list(results) == ["body.0", "body.9"]
    assert all(isinstance(r, MetricResult) for r in results.values())
    assert results["body.9"].value > 20 * results["body.0"].value
    assert results["body.9"].extra["label"] == "degradation"
