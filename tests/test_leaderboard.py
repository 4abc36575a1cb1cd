"""The leaderboard: what ranks (rank_by or the default), weights, directions, units, missing values."""

from __future__ import annotations

import copy

import pytest

from ddr_eval.core.errors import UserError
from ddr_eval.metrics import build_metric
from ddr_eval.results import Leaderboard, MetricInfo, resolve_ranking
from ddr_eval.config.loader import compile_suite
from ddr_eval.config.schema import RankBy

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


def _per_set_rows(psnr: dict[str, dict[str, float]], reference: str = "clean") -> list[dict]:
    """PSNR rows per set on layer ``output`` plus the mean over the non-reference sets, as a run writes them."""
    rows = []
    for model, by_set in psnr.items():
        degraded = [v for s, v in by_set.items() if s != reference]
        for name, value in [*by_set.items(), ("mean", sum(degraded) / len(degraded))]:
            rows.append({"model": model, "layer": "output", "metric": "psnr", "type": "psnr", "set": name,
                         "value": value, "higher_is_better": True,
                         **({"n_sets": len(degraded)} if name == "mean" else {})})
    return rows


def test_a_shared_rank_is_shown_as_such():
    ranking = resolve_ranking(None, INFOS)
    board = Leaderboard.build(_rows(VALUES), INFOS, ranking)
    labels = {row["model"]: board.rank_label(row) for row in board.rows}
    assert labels == {"a": "=1", "b": "=1", "c": "3"}
    assert [r["rank"] for r in board.rows] == [1, 1, 3]  # results.json keeps the integer


def test_a_board_no_ranking_metric_separates_says_so():
    same = {m: {"srga": 4.0, "psnr": 30.0} for m in "abc"}
    board = Leaderboard.build(_rows(same), INFOS, resolve_ranking(None, INFOS))
    assert not board.separates()
    assert "No ranking metric separates these models" in board.explain()
    assert Leaderboard.build(_rows(VALUES), INFOS, resolve_ranking(None, INFOS)).separates()


def test_per_set_summary_header_says_what_it_summarises_and_the_reference_is_its_own_column():
    rows = _per_set_rows({"sharp": {"clean": 38.0, "blur": 25.0, "noise": 27.0},
                          "robust": {"clean": 33.0, "blur": 28.0, "noise": 28.0}})
    infos = [PSNR]
    board = Leaderboard.build(rows, infos, resolve_ranking(None, infos), reference="clean")
    headers = board.headers()
    assert headers["psnr"] == "psnr, mean of 2 degraded sets (dB)"
    assert headers["psnr@clean"] == "psnr, clean set (dB)"
    assert [c.metric for c in board.columns] == ["psnr", "psnr@clean"]
    assert not next(c for c in board.columns if c.metric == "psnr@clean").ranked
    assert board.row("sharp")["psnr@clean"] == 38.0 and board.row("robust")["psnr"] == 28.0
    assert board.row("robust")["rank"] == 1  # ranked by the degraded mean, not by clean PSNR
    assert board.best_by_metric() == {"psnr, mean of 2 degraded sets (dB)": ["robust"]}
    unranked = Leaderboard.build(rows, infos, (), reference="clean")
    assert "psnr@clean" not in unranked.headers()  # only a ranking per-set metric gets the reference column


def test_the_console_board_fits_120_columns_and_names_the_best_and_what_it_leaves_out():
    from ddr_eval.results.console import board_text

    many = [MetricInfo(f"identification[lda,concat,variant{i}]", "identification", True, ranked_by_default=False)
            for i in range(8)]
    infos = [*INFOS, *many]
    rows = _rows(VALUES) + [{"model": m, "layer": "deep", "metric": info.name, "type": info.type, "set": "all",
                             "value": 0.5 + i / 100, "higher_is_better": True}
                            for m in VALUES for i, info in enumerate(many)]
    board = Leaderboard.build(rows, infos, resolve_ranking(None, infos))
    text = board_text(board, width=120)
    assert max(len(line) for line in text.splitlines()) <= 120
    header = text.split("\n--")[0]
    assert "srga" in header and "psnr" in header  # the ranked columns are shown first
    assert "Not shown here" in text and "in the report" in text
    assert "Best: srga, mean of the degraded sets ↓ b; psnr (dB) ↑ a." in " ".join(text.split())
    assert "=1" in text
