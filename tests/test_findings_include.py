"""``findings.include`` (#14): a suite's findings followed by those of the suites it includes,
each computed on that suite's own run, validated when the including suite loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ddr_eval.api import evaluate
from ddr_eval.core.errors import UserError
from ddr_eval.models.zoo import Zoo
from ddr_eval.config.loader import load_suite

ROOT = Path(__file__).resolve().parents[1]

CLEAN = {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]}
BLUR = {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]}
NOISE = {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 20}]}

PARENT = {
    "name": "tiny-parent", "seed": 0,
    "data": {"source": "embedded", "patch_size": 16, "patches_per_image": 2},
    "degradations": [CLEAN, BLUR],
    "models": ["srresnet-gr", "srresnet-nogr"],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0}],
    "findings": {"bootstrap": 0, "include": ["included.yaml"],
                 "global_residual": {"with": "srresnet-gr", "without": "srresnet-nogr", "sets": ["clean", "blur"]}},
}
# its own seed and sets, and a t-SNE metric: the scatters its CinCGAN finding's report shows
INCLUDED = {
    "name": "tiny-cincgan", "seed": 3,
    "data": {"source": "embedded", "patch_size": 16, "patches_per_image": 3},
    "degradations": [CLEAN, NOISE],
    "models": ["cincgan", "srresnet-nogr", "srresnet-gr"],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0},
                {"type": "silhouette", "label": "degradation", "projection": "tsne", "bootstrap": 0}],
    "findings": {"bootstrap": 20, "cincgan": {"model": "cincgan", "baseline": "srresnet-nogr",
                                              "sets": ["clean", "noise"]}},
}


def _write(folder: Path, name: str, suite: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(suite))
    return path


def _parent(tmp_path: Path, included: dict | None = INCLUDED, **findings) -> Path:
    raw = copy.deepcopy(PARENT)
    raw["findings"].update(findings)
    if included is not None:
        _write(tmp_path / "suites", "included.yaml", included)
    return _write(tmp_path / "suites", "parent.yaml", raw)


# -- validation (no zoo needed: nothing runs) ------------------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(UserError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_missing_included_file_is_one_line_naming_it(tmp_path):
    message = _error(_parent(tmp_path, included=None))
    assert message.startswith(f"{tmp_path / 'suites' / 'parent.yaml'}: findings.include[0]: ")
    assert f"{tmp_path / 'suites' / 'included.yaml'}: file not found" in message


def test_an_invalid_included_suite_names_the_include_and_its_own_field(tmp_path):
    broken = copy.deepcopy(INCLUDED)
    broken["degradations"][1]["chain"][1]["sigma"] = -1
    message = _error(_parent(tmp_path, broken))
    assert "parent.yaml: findings.include[0]: " in message
    assert "included.yaml: degradations[1].chain[1].sigma" in message


def test_an_included_suite_needs_findings(tmp_path):
    bare = {k: v for k, v in INCLUDED.items() if k != "findings"}
    message = _error(_parent(tmp_path, bare))
    assert "findings.include[0]" in message and "has no `findings:` section" in message


def test_includes_do_not_nest(tmp_path):
    nested = copy.deepcopy(INCLUDED)
    nested["findings"]["include"] = ["other.yaml"]
    _write(tmp_path / "suites", "other.yaml", INCLUDED)
    message = _error(_parent(tmp_path, nested))
    assert "findings.include[0]" in message and "includes suites itself" in message


def test_a_suite_including_itself_is_a_nested_include(tmp_path):
    raw = copy.deepcopy(PARENT)
    raw["findings"]["include"] = ["parent.yaml"]
    message = _error(_write(tmp_path / "suites", "parent.yaml", raw))
    assert "findings.include[0]" in message and "includes suites itself" in message


def test_a_robustness_suite_cannot_be_included(tmp_path):
    robust = copy.deepcopy(INCLUDED)
    robust["degradations"].append({"name": "noisier", "chain": [{"type": "bicubic", "scale": 2},
                                                               {"type": "gaussian_noise", "sigma": {"sweep": [10, 20, 10]}}]})
    robust["findings"]["robustness"] = {"seeds": [0], "reference": "clean", "strength": [{"sweep": "noisier"}]}
    load_suite(_write(tmp_path / "alone", "robust.yaml", robust))  # a valid suite on its own
    message = _error(_parent(tmp_path, robust))
    assert "findings.include[0]" in message and "a robustness suite cannot be included" in message


def test_include_paths_are_relative_to_the_suite_and_loaded_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")  # not the suite's folder
    loaded = load_suite(_parent(tmp_path))
    (included,) = loaded.included
    assert included.suite.name == "tiny-cincgan" and included.findings.cincgan.baseline == "srresnet-nogr"


def test_the_paper_suite_includes_blind_sr_and_cincgan():
    loaded = load_suite(ROOT / "suites" / "paper.yaml")
    assert [s.suite.name for s in loaded.included] == ["blind-sr", "cincgan"]
    assert "nine findings" in loaded.suite.description


# -- the included findings in the including suite's report ------------------------------------------


needs_zoo = pytest.mark.skipif(not {"srresnet-gr", "srresnet-nogr", "cincgan"} <= set(Zoo.load().names()),
                               reason="zoo not trained")


@needs_zoo
def test_included_findings_follow_with_the_numbers_of_their_own_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _parent(tmp_path)
    results = evaluate(path)
    own, included = results.findings
    assert own.key == "global_residual" and own.suite is None
    assert included.key == "cincgan"
    assert included.suite["file"] == str(tmp_path / "suites" / "included.yaml")
    assert included.suite["seed"] == 3 and included.suite["name"] == "tiny-cincgan"

    (alone,) = evaluate(tmp_path / "suites" / "included.yaml").findings
    assert alone.suite is None
    assert (included.verdict, included.numbers, included.table) == (alone.verdict, alone.numbers, alone.table)

    out = results.write(tmp_path / "report")
    document = json.loads((out / "findings.json").read_text())
    assert [f["key"] for f in document] == ["global_residual", "cincgan"]
    assert document[0]["suite"] is None and document[1]["suite"]["seed"] == 3
    assert document[1]["numbers"] == json.loads(json.dumps(alone.numbers, default=float))
    text = (out / "findings.md").read_text()
    assert f"Computed by {tmp_path / 'suites' / 'included.yaml'} (seed 3)" in text
    assert "full report: reports/tiny-cincgan/" in text

    # the t-SNE scatters of the models the CinCGAN finding names, from the included run, beside the report
    plots = {p["file"] for p in document[1]["plots"]}
    assert plots == {"tiny-cincgan_tsne_cincgan_deep_degradation.png",
                     "tiny-cincgan_tsne_srresnet-nogr_deep_degradation.png"}  # not srresnet-gr: not named
    for name in plots:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
        assert f"]({name})" in text and f"]({name})" in (out / "leaderboard.md").read_text()
    assert set(json.loads((out / "results.json").read_text())["plots"]) == plots
    html = (out / "report.html").read_text()
    assert html.count("tiny-cincgan: cincgan / deep: t-SNE by degradation") >= 1
    assert html.count("data:image/png") == 2  # the parent itself draws no t-SNE

    # the parent report does not write the included suite's report
    assert not (tmp_path / "reports").exists()


def test_a_suite_with_models_added_keeps_include_paths_relative_to_its_file(tmp_path, monkeypatch):
    from ddr_eval.api import prepare
    from ddr_eval.workflows.compare import suite_with_model
    from ddr_eval.models.zoo import zoo_dir

    path = _parent(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    _, compared, _ = suite_with_model(path, zoo_dir() / "checkpoints" / "srcnn" / "model.safetensors", name="mine")
    added, _ = prepare(path, {"name": "srcnn"})
    assert [s.suite.name for s in compared.included] == [s.suite.name for s in added.included] == ["tiny-cincgan"]


def test_a_robustness_suite_runs_its_included_suites_at_each_seed(tmp_path):
    from ddr_eval.workflows.robustness import robustness_findings, run_robustness

    raw = copy.deepcopy(PARENT)
    raw["degradations"] = [CLEAN, {"name": "blurry", "chain": [
        {"type": "gaussian_blur", "sigma": {"sweep": [1, 2, 1]}}, {"type": "bicubic", "scale": 2}]}]
    raw["findings"]["global_residual"]["sets"] = ["clean", "blurry_sigma2"]
    raw["findings"]["robustness"] = {"seeds": [0, 1], "reference": "clean", "strength": [{"sweep": "blurry"}]}
    _write(tmp_path / "suites", "included.yaml", INCLUDED)
    loaded = load_suite(_write(tmp_path / "suites", "robust.yaml", raw))
    runs = []

    def run(seeded):
        runs.append((seeded.suite.name, seeded.suite.seed))
        return evaluate(seeded, cache_dir=tmp_path / "cache").run

    robust = run_robustness(loaded, run)
    assert runs == [("tiny-parent", 0), ("tiny-cincgan", 0), ("tiny-parent", 1), ("tiny-cincgan", 1)]
    for seed in (0, 1):
        assert [f.key for f in robust.per_seed_findings[seed]] == ["global_residual", "cincgan"]
        alone = evaluate({**INCLUDED, "seed": seed}, cache_dir=tmp_path / "cache").findings
        assert robust.per_seed_findings[seed][1].numbers == alone[0].numbers
    (over_seeds,) = [f for f in robustness_findings(robust) if f.key == "cincgan@seeds"]
    assert over_seeds.numbers["verdicts"] == {str(s): robust.per_seed_findings[s][1].verdict for s in (0, 1)}
