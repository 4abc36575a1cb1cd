"""The suite schema and loader: good suites build, bad ones name the YAML path of the problem."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ddr_eval.core.errors import UserError
from ddr_eval.config.loader import compile_suite, load_suite

ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "name": "t",
    "seed": 3,
    "data": {"source": "embedded", "patch_size": 32, "patches_per_image": 2},
    "degradations": [
        {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
        {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 1.5}, {"type": "bicubic", "scale": 2}]},
        {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": [5, 20]}]},
    ],
    "models": ["srresnet-gr", {"path": "x.safetensors", "arch": "MSRResNet"}],
    "metrics": [{"type": "chi", "label": "degradation"}, {"type": "srga"}],
}


def _mutated(path: tuple, value) -> dict:
    raw = copy.deepcopy(GOOD)
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


def _error(raw: dict) -> str:
    with pytest.raises(UserError) as info:
        compile_suite(raw, "suite.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("suite_file", sorted((ROOT / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(suite_file):
    loaded = load_suite(suite_file)
    assert loaded.suite.name == suite_file.stem
    assert loaded.scale in (2, 3, 4)


def test_good_suite_builds_chains_and_metrics():
    loaded = compile_suite(GOOD, "suite.yaml")
    assert list(loaded.chains) == ["clean", "blur", "noise"]
    assert all(chain.scale == 2 for chain in loaded.chains.values())
    assert [m.metric_type for m in loaded.metrics] == ["chi", "srga"]
    assert [m.label for m in loaded.suite.models] == ["srresnet-gr", "x"]
    assert loaded.suite.reference_set == "clean"


def test_hash_is_stable_and_sensitive():
    a = compile_suite(GOOD, "a").suite.sha256()
    assert a == compile_suite(copy.deepcopy(GOOD), "b").suite.sha256()
    assert a != compile_suite(_mutated(("seed",), 4), "c").suite.sha256()


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("degradations", 1, "chain", 0, "sigma"), -1.0, "degradations[1].chain[0]"),
        (("degradations", 2, "chain", 1, "sigma"), [20, 5], "degradations[2].chain[1]"),
        (("degradations", 0, "chain", 0, "type"), "sharpen", "degradations[0].chain[0].type: unknown degradation 'sharpen'"),
        (("data", "patch_size"), 0, "data.patch_size: must be > 0"),
        (("data", "patch_size"), 33, "data.patch_size: 33 is not a multiple of the scale 2"),
        (("metrics", 1, "pca_dim"), -3, "metrics[1]"),
        (("metrics", 0, "type"), "nope", "metrics[0].type: unknown metric 'nope'"),
        (("seed",), "abc", "seed:"),
        (("surprise",), 1, "surprise: is not a known field"),
        (("models",), [], "models:"),
    ],
)
def test_errors_name_the_yaml_path(path, value, expected):
    assert expected in _error(_mutated(path, value))


def test_missing_downsampling_and_mixed_scales_are_rejected():
    assert "exactly one downsampling step" in _error(
        _mutated(("degradations", 0, "chain"), [{"type": "gaussian_noise", "sigma": 5}]))
    assert "same scale" in _error(_mutated(("degradations", 0, "chain"), [{"type": "bicubic", "scale": 4}]))


def test_duplicate_names_and_unknown_reference():
    dup = _mutated(("degradations", 1, "name"), "clean")
    assert "unique" in _error(dup)
    assert "reference 'dirty'" in _error(_mutated(("reference",), "dirty"))


def test_yaml_file_problems(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(UserError, match="file not found"):
        load_suite(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_suite(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_suite(scalar)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    assert load_suite(good).source == str(good)
