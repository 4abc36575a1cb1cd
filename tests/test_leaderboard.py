"""The leaderboard: what ranks (rank_by or the default), weights, directions, units, missing values."""

from __future__ import annotations

import copy

import pytest

from ddr_eval.errors import UserError
from ddr_eval.metrics import build_metric
from ddr_eval.results import Leaderboard, MetricInfo, resolve_ranking
from ddr_eval.suite.loader import compile_suite
from ddr_eval.suite.schema import RankBy

CHI = MetricInfo("chi[degradation,raw]", "chi", True, ranked_by_default=False)
SRGA = MetricInfo("srga", "srga", False)
PSNR = MetricInfo("psnr", "psnr", True, unit="dB")
FLOPS = MetricInfo("flops[8x8]", "flops", False, unit="GFLOPs", unit_scale=1e9, ranked_by_default=False)
LATENCY = MetricInfo("latency[8x8]", "latency", False, unit="ms", ranked_by_default=False, wall_clock=True)
INFOS = [CHI, SRGA, PSNR, FLOPS, LATENCY]


def _rows(values: dict[str, dict[str, float | None]]) -> list[dict]:
    rows = []
    for model, by_metric in values.items():
        for info in INFOS:
            if info.name in by_metric:
                layer = "model" if info.type in ("flops", "latency") else "output" if info.type == "psnr" else "deep"
                rows.append({"model": model, "layer": layer, "metric": info.name, "type": info.type,
                             "set": "all" if info.type != "srga" else "mean", "value": by_metric[info.name],
                             "higher_is_better": info.higher_is_better})
    return rows


VALUES = {
    "a": {"chi[degradation,raw]": 90.0, "srga": 4.0, "psnr": 30.0, "flops[8x8]": 2e9, "latency[8x8]": 1.0},
    "b": {"chi[degradation,raw]": 10.0, "srga": 3.0, "psnr": 29.0, "flops[8x8]": 1e9, "latency[8x8]": 9.0},
    "c": {"chi[degradation,raw]": 50.0, "srga": 5.0, "psnr": None, "flops[8x8]": 3e9, "latency[8x8]": 5.0},
}


def _ranks(board: Leaderboard) -> dict[str, int]:
    return {row["model"]: row["rank"] for row in board.rows}


def test_default_ranking_skips_question_dependent_costs_and_wall_clock():
    ranking = resolve_ranking(None, INFOS)
    assert [k.metric for k in ranking] == ["srga", "psnr"]
    board = Leaderboard.build(_rows(VALUES), INFOS, ranking)
    # a: srga 2, psnr 1 -> 1.5; b: 1, 2 -> 1.5; c: 3, missing psnr ranks last (3) -> 3
    assert _ranks(board) == {"a": 1, "b": 1, "c": 3}
    assert [c.metric for c in board.ranked_by] == ["srga", "psnr"]
    assert "Shown, not ranked: chi[degradation,raw], flops[8x8] (GFLOPs), latency[8x8] (ms)" not in board.explain()
    assert "Shown, not ranked: chi[degradation,raw], flops[8x8], latency[8x8]." in board.explain()


def test_rank_by_names_weights_and_directions():
    ranking = resolve_ranking([RankBy(metric="chi", weight=3.0), RankBy(metric="srga")], INFOS)
    assert _ranks(Leaderboard.build(_rows(VALUES), INFOS, ranking)) == {"a": 1, "c": 2, "b": 3}
    lower_chi = resolve_ranking([RankBy(metric="chi[degradation,raw]", better="lower")], INFOS)
    assert _ranks(Leaderboard.build(_rows(VALUES), INFOS, lower_chi)) == {"b": 1, "c": 2, "a": 3}


def test_values_are_in_display_units_with_units_in_headers():
    board = Leaderboard.build(_rows(VALUES), INFOS, resolve_ranking(None, INFOS))
    assert board.row("b")["flops[8x8]"] == 1.0
    assert board.headers()["flops[8x8]"] == "flops[8x8] (GFLOPs)" and board.headers()["psnr"] == "psnr (dB)"
    assert board.row("a")["layer"] == "deep"  # whole-network values join the feature layer's row
    assert Leaderboard.from_dict(board.to_dict()) == board


@pytest.mark.parametrize("rank_by, message", [
    ([RankBy(metric="lpips")], "'lpips' is not a metric of this suite"),
    ([RankBy(metric="latency")], "measures this machine"),
    ([RankBy(metric="srga"), RankBy(metric="srga")], "named twice"),
])
def test_bad_rank_by_is_a_user_error(rank_by, message):
    with pytest.raises(UserError, match=message):
        resolve_ranking(rank_by, INFOS)


SUITE = {
    "name": "t",
    "data": {"source": "embedded", "patch_size": 32, "patches_per_image": 2},
    "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                     {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 1.5}, {"type": "bicubic", "scale": 2}]}],
    "models": ["srresnet-gr"],
    "metrics": [{"type": "chi", "label": "degradation"}, {"type": "chi", "label": "content"}, {"type": "psnr"}],
}


@pytest.mark.parametrize("rank_by, message", [
    (["chi"], r"suite.yaml: rank_by\[0\]: 'chi' is ambiguous"),
    ([{"metric": "psnr", "weight": 0}], r"suite.yaml: rank_by\[0\].weight: must be > 0"),
    (["srga"], r"suite.yaml: rank_by\[0\]: 'srga' is not a metric of this suite"),
])
def test_rank_by_is_checked_when_the_suite_loads(rank_by, message):
    raw = copy.deepcopy(SUITE)
    raw["rank_by"] = rank_by
    with pytest.raises(UserError, match=message):
        compile_suite(raw, "suite.yaml")


def test_rank_by_full_names_load():
    raw = copy.deepcopy(SUITE)
    raw["rank_by"] = ["chi[content,raw]", {"metric": "psnr", "weight": 2}]
    assert [r.metric for r in compile_suite(raw, "suite.yaml").suite.rank_by] == ["chi[content,raw]", "psnr"]


def test_aggregation_is_a_registered_function_of_per_set_metrics():
    median = build_metric({"type": "psnr", "aggregation": "median"})
    assert median.name == "psnr[median]" and median.aggregate([1.0, 2.0, 10.0]) == 2.0
    assert build_metric({"type": "psnr"}).aggregate([1.0, 2.0, 10.0]) == pytest.approx(13 / 3)
    with pytest.raises(UserError, match="unknown aggregation 'max'"):
        build_metric({"type": "srga", "aggregation": "max"})
    with pytest.raises(UserError, match="pooled"):
        build_metric({"type": "chi", "aggregation": "median"})
