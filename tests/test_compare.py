"""``ddr-eval compare``: placing a user model on a suite's leaderboard, deltas to its neighbours,
the feature cache doing the zoo's work, and the report it writes."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from ddr_eval.cli import main
from ddr_eval.workflows.compare import _describe_delta, compare_model, compare_rows, suite_with_model
from ddr_eval.core.errors import UserError
from ddr_eval.models.archs import ARCHS
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import compile_suite

# Two metrics with opposite directions; "up" higher is better, "down" lower is better.
# Per-metric ranks:        up      down     mean -> leaderboard rank
#   a  (up 9, down 1)      1       1        1.0  -> 1
#   b  (up 5, down 4)      3       3        3.0  -> 3
#   c  (up 1, down 9)      4       4        4.0  -> 4
#   new (up 7, down 2)     2       2        2.0  -> 2
VALUES = {"a": (9.0, 1.0), "b": (5.0, 4.0), "c": (1.0, 9.0), "new": (7.0, 2.0)}


def rows_for(values: dict[str, tuple[float, float]]) -> list[dict]:
    rows = []
    for model, (up, down) in values.items():
        for metric, value, higher in (("up", up, True), ("down", down, False)):
            rows.append({"model": model, "layer": "deep", "metric": metric, "type": metric, "kind": "separability",
                         "set": "all", "value": value, "ci_low": None, "ci_high": None, "higher_is_better": higher,
                         "aggregation": "mean", "status": "ok"})
    return rows


def test_new_model_is_ranked_and_diffed_against_its_neighbours():
    comparison = compare_rows(rows_for(VALUES), "new", "toy")
    (placement,) = comparison.placements
    assert (placement.rank, placement.of) == (2, 4)
    assert [(n.model, n.rank, n.position) for n in placement.neighbours] == [("a", 1, "above"), ("b", 3, "below")]
    above, below = placement.deltas
    assert above == {"up": 7.0 - 9.0, "down": 2.0 - 1.0}
    assert below == {"up": 7.0 - 5.0, "down": 2.0 - 4.0}
    table = comparison.delta_table(placement).set_index("metric")
    assert table.loc["up", "Δ vs a / deep (#1)"] == "-2 (worse)"
    assert table.loc["down", "Δ vs b / deep (#3)"] == "-2 (better)"
    assert "new / deep: rank 2 of 4 in suite toy" in comparison.text()


def test_a_new_leader_has_only_a_neighbour_below():
    values = {**VALUES, "new": (10.0, 0.5)}
    (placement,) = compare_rows(rows_for(values), "new").placements
    assert placement.rank == 1
    assert [(n.model, n.position) for n in placement.neighbours] == [("a", "below")]


def test_neighbours_are_other_models_not_other_layers_of_the_same_one():
    rows = rows_for(VALUES) + [{**r, "layer": "block0"} for r in rows_for({"new": (8.0, 1.5)})]
    comparison = compare_rows(rows, "new")
    assert len(comparison.placements) == 2
    for placement in comparison.placements:
        assert all(n.model != "new" for n in placement.neighbours)


def test_describe_delta_follows_the_metric_direction():
    assert _describe_delta(0.5, True) == "+0.5 (better)"
    assert _describe_delta(0.5, False) == "+0.5 (worse)"
    assert _describe_delta(0.0, True) == "0 (same)"
    assert _describe_delta(None, True) == "—"


def test_missing_model_row_is_a_user_error():
    with pytest.raises(UserError, match="no leaderboard row"):
        compare_rows(rows_for(VALUES), "absent")


# -- with real (tiny) models ---------------------------------------------------------------------

TINY = dict(num_feat=8, num_block=2, upscale=2)
DEGRADATIONS = [
    {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
    {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
    {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 20}]},
]


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A suite file over two tiny 'zoo' checkpoints, a user checkpoint, and a private feature cache."""
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))
    paths = []
    for i in range(3):
        torch.manual_seed(i)
        paths.append(tmp_path / f"m{i}.safetensors")
        save_model(paths[-1], ARCHS.get("MSRResNet")(**TINY), "MSRResNet", TINY)
    suite = {
        "name": "tiny-zoo", "seed": 0, "data": {"patch_size": 16, "patches_per_image": 2},
        "degradations": DEGRADATIONS,
        "models": [{"path": str(paths[0]), "as": "zoo-a"}, {"path": str(paths[1]), "as": "zoo-b"}],
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10},
                    {"type": "srga", "pca_dim": 8}, {"type": "psnr"}],
    }
    suite_path = tmp_path / "zoo.yaml"
    suite_path.write_text(yaml.safe_dump(suite))
    monkeypatch.chdir(tmp_path)
    return suite_path, paths[2]


def test_suite_with_model_appends_the_checkpoint(zoo):
    suite_path, model = zoo
    base, loaded, label = suite_with_model(suite_path, model, arch="MSRResNet", name="mine")
    assert label == "mine"
    assert [m.label for m in loaded.suite.models] == [m.label for m in base.suite.models] + ["mine"]
    added = loaded.suite.models[-1]
    assert added.arch == "MSRResNet" and added.path == str(model.resolve())
    with pytest.raises(UserError, match="already has a model named 'zoo-a'"):
        suite_with_model(suite_path, model, name="zoo-a")
    with pytest.raises(UserError, match="no such checkpoint"):
        suite_with_model(suite_path, model.with_name("absent.safetensors"))


def test_compare_reuses_the_zoo_features_and_writes_its_report(zoo):
    suite_path, model = zoo
    first = run_suite(compile_suite(yaml.safe_load(suite_path.read_text())), progress=False)
    zoo_cells, zoo_results = first.provenance["cells"], first.provenance["results_cache"]["misses"]
    outcome = compare_model(model, suite_path, name="mine", progress=False)
    cache, results = outcome.result.provenance["cache"], outcome.result.provenance["results_cache"]
    # zoo metrics reused (written by the first run of this process: repeats, not an earlier run's)
    assert results == {"enabled": True, "hits": zoo_results, "misses": zoo_results // 2, "repeats": zoo_results}
    assert outcome.result.provenance["cells"] == zoo_cells // 2  # only the new model's cells ran
    assert cache == {"enabled": True, "hits": 0, "misses": zoo_cells // 2, "repeats": 0}
    assert outcome.out_dir.resolve() == suite_path.parent / "reports" / "tiny-zoo" / "compare-mine"
    html = (outcome.out_dir / "report.html").read_text(encoding="utf-8")
    markdown = (outcome.out_dir / "leaderboard.md").read_text()
    (placement,) = outcome.comparison.placements
    for text in (html, markdown):
        assert "Compare: mine / deep" in text
        assert f"rank {placement.rank} of 3" in text
    models = {r["model"] for r in json.loads((outcome.out_dir / "results.json").read_text())["rows"]}
    assert models == {"zoo-a", "zoo-b", "mine"}


def test_compare_cli_prints_rank_and_deltas(zoo, capsys):
    suite_path, model = zoo
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--model", str(model), "--suite", str(suite_path), "-q"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "m2 / deep: rank" in out and "of 3 in suite tiny-zoo" in out
    assert "Δ vs zoo-" in out
    assert (suite_path.parent / "reports" / "tiny-zoo" / "compare-m2" / "report.html").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--model", str(model.with_name("absent.pth")), "--suite", str(suite_path)])
    assert exit_info.value.code == 2
