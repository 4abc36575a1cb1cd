"""``{sweep: [start, stop, step]}`` in a chain step: one degradation set per value, at validation."""

from __future__ import annotations

import copy

import pytest

from ddr_eval.core.errors import UserError
from ddr_eval.config.loader import compile_suite

SUITE = {
    "name": "t",
    "data": {"source": "embedded", "patch_size": 32, "patches_per_image": 2},
    "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                     {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": [0.5, 8.0, 0.5]}},
                                                {"type": "bicubic", "scale": 2}]}],
    "reference": "clean",
    "models": ["srresnet-gr"],
    "metrics": [{"type": "srga"}],
}


def test_a_sweep_makes_one_named_set_per_value():
    loaded = compile_suite(copy.deepcopy(SUITE), "suite.yaml")
    names = [d.name for d in loaded.suite.degradations]
    assert names[:3] == ["clean", "blur_sigma0.5", "blur_sigma1"] and names[-1] == "blur_sigma8" and len(names) == 17
    point = loaded.suite.degradations[4].sweep
    assert (point.group, point.step, point.parameter, point.value) == ("blur", "gaussian_blur", "sigma", 2.0)
    assert loaded.chains["blur_sigma2"].steps[0].sigma == 2.0
    assert loaded.suite.degradations[0].sweep is None


@pytest.mark.parametrize("sweep, message", [
    ([8.0, 0.5, 0.5], "stop >= start"),
    ([0.5, 8.0], r"\[start, stop, step\]"),
    ([0.0, 1.0, 0.001], "at most 100"),
])
def test_bad_sweeps_name_their_yaml_path(sweep, message):
    raw = copy.deepcopy(SUITE)
    raw["degradations"][1]["chain"][0]["sigma"] = {"sweep": sweep}
    with pytest.raises(UserError, match=r"suite.yaml: degradations\[1\]\.chain\[0\]\.sigma\.sweep: .*" + message):
        compile_suite(raw, "suite.yaml")


def test_swept_values_are_still_validated_by_the_step():
    raw = copy.deepcopy(SUITE)
    raw["degradations"][1]["chain"][0]["sigma"] = {"sweep": [0.0, 1.0, 0.5]}
    with pytest.raises(UserError, match=r"degradations\[1\]\.chain\[0\]\.sigma: must be > 0"):
        compile_suite(raw, "suite.yaml")
