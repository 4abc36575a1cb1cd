"""The Python API gives the leaderboard's numbers: each metric function, fed ``Results.features``,
equals the value ``ddr-eval run`` wrote to results.csv for the same suite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import ddr_eval
from ddr_eval.cli import main
from ddr_eval.metrics.results import MetricResult
from test_api import TINY, tiny_model

SETS = ("clean", "blur", "noise")
SUITE = {
    **TINY,
    "name": "api-consistency",
    "degradations": [*TINY["degradations"],
                     {"name": "noise", "chain": [{"type": "bicubic"}, {"type": "gaussian_noise", "sigma": 20}]}],
    "metrics": [{"type": "chi"}, {"type": "silhouette"}, {"type": "davies_bouldin"}, {"type": "srga"},
                {"type": "ddr_chi_to_reference"}],
}


@pytest.fixture(scope="module")
def cli_and_api(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-consistency")
    suite = root / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DDR_EVAL_FEATURE_CACHE", str(root / "cache"))
        with pytest.raises(SystemExit) as done:
            main(["run", str(suite), "--out", str(root / "report"), "-q"])
        assert done.value.code in (0, None)
        results = ddr_eval.evaluate(str(suite), cache_dir=root / "cache")
    return pd.read_csv(root / "report" / "results.csv"), results


def _board(frame: pd.DataFrame, metric_type: str, set_name: str) -> float:
    rows = frame[(frame["model"] == "srresnet-gr") & (frame["type"] == metric_type) & (frame["set"] == set_name)]
    assert len(rows) == 1, rows
    return float(rows["value"].item())


def _stacked(results, metric: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    features = [results.features("srresnet-gr", "deep", name, metric=metric) for name in SETS]
    labels = np.concatenate([[name] * len(f) for name, f in zip(SETS, features)])
    return np.concatenate(features), labels


@pytest.mark.parametrize("function", ["chi", "silhouette", "davies_bouldin"])
def test_separability_functions_equal_the_leaderboard(cli_and_api, function):
    frame, results = cli_and_api
    features, labels = _stacked(results)
    result = getattr(ddr_eval, function)(features, labels, seed=SUITE["seed"], bootstrap=0)
    assert isinstance(result, MetricResult)
    assert result.value == pytest.approx(_board(frame, function, "all"), rel=1e-9)


@pytest.mark.parametrize("function", ["srga", "ddr_chi_to_reference"])
def test_generalization_functions_equal_the_leaderboard(cli_and_api, function):
    frame, results = cli_and_api
    reference = results.features("srresnet-gr", "deep", "clean", metric=function)
    for name in ("blur", "noise"):
        test = results.features("srresnet-gr", "deep", name, metric=function)
        result = getattr(ddr_eval, function)(reference, test, seed=SUITE["seed"], bootstrap=0)
        assert isinstance(result, MetricResult)
        assert result.value == pytest.approx(_board(frame, function, name), rel=1e-9)


def test_srga_reads_flattened_maps_and_pooled_features_give_another_number(cli_and_api):
    frame, results = cli_and_api
    assert results.pooling_of("srga") == "flatten" and results.pooling_of() == "gap"
    pooled = ddr_eval.srga(results.features("srresnet-gr", "deep", "clean"),
                           results.features("srresnet-gr", "deep", "blur")).value
    assert pooled != pytest.approx(_board(frame, "srga", "blur"), rel=1e-3)


def test_extract_takes_nchw_tensors_and_nhwc_arrays_alike():
    net = tiny_model()
    lr = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    from_array = ddr_eval.extract(net, lr, layers=["body.1"]).features["body.1"]
    from_tensor = ddr_eval.extract(net, torch.from_numpy(lr).permute(0, 3, 1, 2), layers=["body.1"]).features["body.1"]
    np.testing.assert_array_equal(from_array, from_tensor)
    with pytest.raises(ddr_eval.UserError, match="N,C,h,w tensor"):
        ddr_eval.extract(net, torch.zeros(3, 8, 8), layers=["body.1"])
