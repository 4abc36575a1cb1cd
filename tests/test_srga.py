"""SRGA (GGD fit, closed-form KL, the published index) and the generalization metrics."""

import importlib
import math

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.decomposition import PCA

from ddr_eval.core.errors import DegenerateInputError
from ddr_eval.metrics import METRICS, build_metric, fit_ggd, ggd_alpha, ggd_kl, srga


def gaussian_features(scale: float, seed: int, n: int = 400, dim: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=(n, dim))


# ----------------------------------------------------------------------------- independent reference


def reference_srga(reference: np.ndarray, test: np.ndarray, pca_dim: int = 300, outlier_sigma: float = 5.0) -> float:
    """Element-by-element transcription of the published recipe, with Python floats and math.gamma."""

    def set_statistics(features):
        n_components = min(pca_dim, *features.shape)
        coefficients = PCA(n_components=n_components, random_state=0).fit_transform(features).reshape(-1).tolist()
        mean = sum(coefficients) / len(coefficients)
        std = math.sqrt(sum((v - mean) ** 2 for v in coefficients) / len(coefficients))
        kept = [v for v in coefficients if mean - outlier_sigma * std < v < mean + outlier_sigma * std]
        second_moment = sum(v * v for v in kept) / len(kept)
        kept_mean = sum(kept) / len(kept)
        mean_abs = sum(abs(v - kept_mean) for v in kept) / len(kept)
        target = second_moment / mean_abs**2
        best_shape, best_gap = None, math.inf
        for i in range(9800):  # shapes 0.200, 0.201, ..., 9.999
            shape = 0.2 + 0.001 * i
            ratio = math.gamma(1 / shape) * math.gamma(3 / shape) / math.gamma(2 / shape) ** 2
            if abs(target - ratio) < best_gap:
                best_shape, best_gap = shape, abs(target - ratio)
        return math.sqrt(second_moment), best_shape

    s1, g1 = set_statistics(reference)
    s2, g2 = set_statistics(test)
    G = math.gamma
    numerator = g1 * s2 * G(1 / g2) * math.sqrt(G(1 / g2) * G(3 / g1))
    denominator = g2 * s1 * G(1 / g1) * math.sqrt(G(1 / g1) * G(3 / g2))
    scale_ratio = (s1 * math.sqrt(G(1 / g1) * G(3 / g2))) / (s2 * math.sqrt(G(1 / g2) * G(3 / g1)))
    kl = math.log(numerator / denominator) - 1 / g1 + scale_ratio**g2 * G((g2 + 1) / g1) / G(1 / g1)
    return math.log10(kl + 1e-5) + 5


def script_srga(reference: np.ndarray, test: np.ndarray, pca_dim: int, anomaly_sigma: float = 5.0,
                svd_solver: str = "auto") -> tuple[float, str]:
    """The steps of lyh-18/SRGA's ``calculate_SRGA_ref.py`` as that script performs them: its PCA
    call, its element-by-element outlier loop (``list.remove``, ``np.std`` per element), its GGD
    estimate and its ``KL_GGD3`` formula. Returns the SRGA index and the solver sklearn picked."""
    from scipy.special import gamma

    def estimate_ggd_parameters(vec):
        gam = np.arange(0.2, 10.0, 0.001)
        r_gam = (gamma(1 / gam) * gamma(3 / gam)) / ((gamma(2 / gam)) ** 2)
        sigma_sq = np.mean(vec**2)
        e = np.mean(np.abs(vec - np.mean(vec)))
        return np.sqrt(sigma_sq), gam[np.argmin(np.abs(sigma_sq / e**2 - r_gam), axis=0)]

    def set_parameters(features):
        pca = PCA(n_components=pca_dim, random_state=0, svd_solver=svd_solver)
        x2 = pca.fit_transform(features).reshape(-1)
        x2_mean = np.mean(x2)
        x2_list = list(x2)
        for i in x2_list.copy():
            if i <= x2_mean - anomaly_sigma * np.std(x2) or i >= x2_mean + anomaly_sigma * np.std(x2):
                x2_list.remove(i)
        return (*estimate_ggd_parameters(np.array(x2_list)), pca._fit_svd_solver)

    sigma1, shape1, solver = set_parameters(reference)
    sigma2, shape2, _ = set_parameters(test)
    i1 = shape1 * sigma2 * gamma(1 / shape2) * np.sqrt(gamma(1 / shape2) * gamma(3 / shape1))
    i2 = shape2 * sigma1 * gamma(1 / shape1) * np.sqrt(gamma(1 / shape1) * gamma(3 / shape2))
    i3 = sigma1 * np.sqrt(gamma(1 / shape1) * gamma(3 / shape2))
    i4 = sigma2 * np.sqrt(gamma(1 / shape2) * gamma(3 / shape1))
    kld = np.log(i1 / i2) - 1 / shape1 + (i3 / i4) ** shape2 * (gamma(shape2 / shape1 + 1 / shape1) / gamma(1 / shape1))
    return float(np.log10(kld + 10 ** (-5)) + 5), solver


def randomized_shaped_sets() -> tuple[np.ndarray, np.ndarray]:
    """120 x 600 sets: with 30 components sklearn's ``auto`` picks its randomized solver
    (more than 500 columns, 30 < 0.8 * 120), and a flat spectrum makes it inexact."""
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(120, 600))
    test = rng.laplace(size=(120, 600)) * np.linspace(2.0, 0.5, 600)
    return reference, test


def numerical_kl(shape1, alpha1, shape2, alpha2) -> float:
    def log_density(x, shape, alpha):
        return math.log(shape / (2 * alpha * math.gamma(1 / shape))) - (abs(x) / alpha) ** shape

    def integrand(x):
        log_p1 = log_density(x, shape1, alpha1)
        return math.exp(log_p1) * (log_p1 - log_density(x, shape2, alpha2))

    half, _ = integrate.quad(integrand, 0, np.inf, limit=200, epsabs=1e-12, epsrel=1e-10)
    return 2 * half


# ----------------------------------------------------------------------------- SRGA function


def test_srga_matches_independent_reference_implementation():
    reference = gaussian_features(1.0, seed=0, n=200, dim=30)
    test = np.random.default_rng(1).laplace(scale=1.3, size=(200, 30))
    assert srga(reference, test) == pytest.approx(reference_srga(reference, test), abs=1e-9)
    assert srga(reference, test, pca_dim=10, outlier_sigma=2.5) == pytest.approx(
        reference_srga(reference, test, pca_dim=10, outlier_sigma=2.5), abs=1e-9
    )


def test_default_srga_equals_the_authors_script_where_sklearn_goes_randomized():
    reference, test = randomized_shaped_sets()
    expected, solver = script_srga(reference, test, pca_dim=30)
    assert solver == "randomized"  # the case the issue is about
    assert abs(srga(reference, test, pca_dim=30) - expected) < 1e-9
    result = build_metric({"type": "srga", "pca_dim": 30}).compute(reference, test, seed=0)
    assert abs(result.value - expected) < 1e-9
    assert result.extra["pca_solver"] == {"reference": "randomized", "test": "randomized"}
    assert "pca solver: randomized" in result.extra["warnings"]


@pytest.mark.parametrize("shape, n_components", [
    ((120, 600), 30), ((120, 600), 96), ((120, 600), 120), ((400, 30), 30), ((300, 400), 300),
    ((128, 32768), 128), ((800, 65536), 300), ((2000, 100), 50), ((501, 20), 10), ((60, 3000), 47),
])
def test_auto_solver_rule_is_sklearns(shape, n_components):
    from ddr_eval.metrics.srga import sklearn_auto_solver

    features = np.random.default_rng(0).normal(size=shape) if shape[1] < 20_000 else None
    if features is None:  # too large to fit in a test: sklearn's rule for it is randomized (300 < 0.8 * 800)
        expected = "randomized" if n_components < 0.8 * min(shape) else "full"
    else:
        pca = PCA(n_components=n_components, random_state=0).fit(features)
        expected = pca._fit_svd_solver
    assert sklearn_auto_solver(*shape, n_components) == expected


def test_default_srga_equals_the_authors_script_where_sklearn_goes_exact():
    """Wide sets whose components are clipped to the sample count (the default suite's case):
    sklearn's ``auto`` runs its full SVD; the default computes the exact scores its own way."""
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(100, 1500)) * np.linspace(3.0, 0.2, 1500)
    test = rng.laplace(size=(100, 1500)) * np.linspace(2.0, 0.5, 1500)
    expected, solver = script_srga(reference, test, pca_dim=100)
    assert solver == "full"
    result = build_metric({"type": "srga", "pca_dim": 300}).compute(reference, test, seed=0)
    assert abs(result.value - expected) < 1e-9
    assert result.extra["pca_solver"] == {"reference": "full", "test": "full"}


def test_exact_pca_solver_gives_the_exact_value_and_says_so():
    reference, test = randomized_shaped_sets()
    exact, _ = script_srga(reference, test, pca_dim=30, svd_solver="full")
    randomized, _ = script_srga(reference, test, pca_dim=30)
    assert abs(exact - randomized) > 1e-4  # otherwise this data could not tell the solvers apart
    metric = build_metric({"type": "srga", "pca_dim": 30, "pca_solver": "exact"})
    result = metric.compute(reference, test, seed=0)
    assert abs(result.value - exact) < 1e-9
    assert result.extra["pca_solver"] == {"reference": "exact", "test": "exact"}
    assert metric.name != build_metric({"type": "srga", "pca_dim": 30}).name  # both can sit in one suite


def test_unknown_pca_solver_is_a_suite_error():
    with pytest.raises(Exception, match="pca_solver"):
        build_metric({"type": "srga", "pca_solver": "fast"})


def test_srga_of_a_set_against_itself_is_zero():
    features = gaussian_features(1.0, seed=2)
    assert srga(features, features) == pytest.approx(math.log10(1e-5) + 5, abs=1e-6)


def test_srga_grows_with_the_distribution_shift():
    reference = gaussian_features(1.0, seed=3)
    slightly = srga(reference, gaussian_features(1.1, seed=4))
    doubled = srga(reference, gaussian_features(2.0, seed=5))
    assert doubled > slightly + 1.0


def test_srga_metric_fits_a_shared_reference_once(monkeypatch):
    """Speed is bench/bench_srga.py's business; this checks the reference PCA is not refitted
    for every test set, and that a changed array (same object, new values) is refitted."""
    srga_module = importlib.import_module("ddr_eval.metrics.srga")  # the package exports the function srga

    calls = []
    real_fit = srga_module.fit_set
    monkeypatch.setattr(srga_module, "fit_set", lambda *a, **k: calls.append(a[0].shape) or real_fit(*a, **k))
    monkeypatch.setattr(srga_module, "_FITS", srga_module._FitMemo())
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(40, 64))
    tests = [rng.normal(scale=s, size=(40, 64)) for s in (1.0, 1.5, 2.0)]
    metric = build_metric({"type": "srga", "pca_dim": 16})
    values = [metric.compute(reference, test, seed=0).value for test in tests]
    assert len(calls) == 1 + len(tests)
    assert values == [srga(reference, test, pca_dim=16) for test in tests]
    calls.clear()
    reference *= 2.0
    changed = metric.compute(reference, tests[0], seed=0).value
    assert len(calls) == 1  # the changed reference only; tests[0] is remembered
    assert changed == srga(reference, tests[0], pca_dim=16) != values[0]


# ----------------------------------------------------------------------------- GGD pieces


@pytest.mark.parametrize("shape", [0.5, 0.8, 1.0, 1.5, 2.0, 3.0])
def test_fit_ggd_recovers_shape_of_gennorm_samples(shape):
    samples = stats.gennorm(shape, scale=1.7).rvs(size=100_000, random_state=np.random.default_rng(int(shape * 10)))
    fitted_shape, sigma = fit_ggd(samples)
    assert fitted_shape == pytest.approx(shape, abs=0.05)
    assert sigma == pytest.approx(np.sqrt(np.mean(samples**2)))


def test_ggd_alpha_is_the_scale_of_a_ggd_with_that_std():
    shape, alpha = 1.3, 2.1
    std = stats.gennorm(shape, scale=alpha).std()
    assert ggd_alpha(shape, std) == pytest.approx(alpha, rel=1e-12)


@pytest.mark.parametrize(
    "params", [(2.0, 1.0, 2.0, 1.5), (1.0, 0.7, 2.0, 1.2), (0.6, 1.0, 1.4, 0.8), (3.0, 2.0, 0.9, 1.0)]
)
def test_ggd_kl_equals_numerical_integration(params):
    assert ggd_kl(*params) == pytest.approx(numerical_kl(*params), rel=1e-6, abs=1e-9)


def test_ggd_kl_of_equal_distributions_is_zero():
    assert ggd_kl(1.7, 0.9, 1.7, 0.9) == pytest.approx(0.0, abs=1e-12)


def test_fit_ggd_of_constant_values_raises():
    with pytest.raises(DegenerateInputError):
        fit_ggd(np.full(10, 3.0))


# ----------------------------------------------------------------------------- registered metrics


def test_srga_metric_equals_function_and_records_clip():
    reference, test = gaussian_features(1.0, seed=6), gaussian_features(1.5, seed=7)
    metric = build_metric({"type": "srga"})
    result = metric.compute(reference, test, seed=0)
    assert metric.name == "srga[pca300]"
    assert result.value == srga(reference, test)
    assert result.ci_low is None  # bootstrap is opt-in for SRGA
    assert result.extra["pca_dim"] == {"reference": 48, "test": 48}
    assert any("clipped from 300 to 48" in w for w in result.extra["warnings"])


def test_srga_metric_bootstrap_interval_contains_estimate():
    reference, test = gaussian_features(1.0, seed=8, n=200, dim=16), gaussian_features(1.3, seed=9, n=200, dim=16)
    result = build_metric({"type": "srga", "bootstrap": 30}).compute(reference, test, seed=1)
    assert result.ci_low <= result.value <= result.ci_high


@pytest.mark.parametrize("name", ["srga", "ddr_chi_to_reference"])
def test_generalization_metrics_reject_degenerate_features(name):
    metric = build_metric({"type": name})
    good = gaussian_features(1.0, seed=10)
    with pytest.raises(DegenerateInputError, match="constant"):
        metric.compute(good, np.zeros_like(good), seed=0)
    bad = good.copy()
    bad[0, 0] = np.inf
    with pytest.raises(DegenerateInputError, match="NaN/Inf"):
        metric.compute(bad, good, seed=0)
    with pytest.raises(DegenerateInputError, match="at least 2 samples"):
        metric.compute(good, good[:1], seed=0)


def test_ddr_chi_to_reference_low_when_unchanged_and_high_when_shifted():
    metric = build_metric({"type": "ddr_chi_to_reference", "bootstrap": 50})
    reference = gaussian_features(1.0, seed=11)
    same = metric.compute(reference, gaussian_features(1.0, seed=12), seed=0)
    shifted = metric.compute(reference, gaussian_features(1.0, seed=13) + 1.0, seed=0)
    assert same.value < 5 < 100 < shifted.value
    assert same.ci_low <= same.value <= same.ci_high
    assert metric.name == "ddr_chi_to_reference[pca50]"


def test_ddr_chi_to_reference_needs_same_width():
    with pytest.raises(DegenerateInputError, match="width"):
        build_metric({"type": "ddr_chi_to_reference"}).compute(
            gaussian_features(1.0, 0, dim=8), gaussian_features(1.0, 1, dim=9), seed=0
        )


def test_generalization_directions():
    for name in ("srga", "ddr_chi_to_reference"):
        assert METRICS.get(name).kind == "generalization"
        assert METRICS.get(name).higher_is_better is False
