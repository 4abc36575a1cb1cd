"""The relative-depth figure of a layer sweep: ordering, the deep tap kept once, files and attachment."""

from __future__ import annotations

import types

import pytest

from ddr_eval.findings import FindingResult, Verdict
from ddr_eval.report.depth import depth_points, with_depth_plots

CURVES = {
    # the deep tap is block2's module: drawn once, at depth 1
    "deep-net": [("deep", 5.0, 40.0), ("block0", 160.0, 6.0), ("block1", 30.0, 20.0), ("block2", 5.0, 40.0)],
    "shallow-net": [("deep", 9.0, 3.0), ("block0", 2.0, 1.0)],
    "one-layer": [("deep", 1.0, 1.0)],
}
LAYERS = {
    "deep-net": {"deep": "body.2", "block0": "body.0", "block1": "body.1", "block2": "body.2"},
    "shallow-net": {"deep": "conv_body", "block0": "body.0"},
    "one-layer": {"deep": "body.0"},
}


def test_points_run_from_the_first_block_to_the_deep_tap():
    points = depth_points(CURVES, LAYERS)
    deep = points[(points["model"] == "deep-net") & (points["label"] == "degradation")]
    assert list(deep["layer"]) == ["block0", "block1", "deep"]
    assert list(deep["depth"]) == [0.0, 0.5, 1.0]
    assert list(deep["chi"]) == [160.0, 30.0, 5.0]
    content = points[(points["model"] == "deep-net") & (points["label"] == "content")]
    assert list(content["chi"]) == [6.0, 20.0, 40.0]
    shallow = points[(points["model"] == "shallow-net") & (points["label"] == "degradation")]
    assert list(shallow["layer"]) == ["block0", "deep"] and list(shallow["depth"]) == [0.0, 1.0]
    assert "one-layer" not in set(points["model"])


def test_a_finding_with_curves_gets_its_figure_as_png_and_svg(tmp_path):
    finding = FindingResult("sr_vs_classification", "t", "e", Verdict.REPRODUCED, "r", "s", numbers={"curves": CURVES})
    plain = FindingResult("adversarial", "t", "e", Verdict.REPRODUCED, "r", "s")
    sources = [types.SimpleNamespace(label=m, layers=layers) for m, layers in LAYERS.items()]
    result = types.SimpleNamespace(sources=sources)
    findings, images, files = with_depth_plots([finding, plain], {}, result, previous_dir=tmp_path)
    assert findings[1] is plain
    assert findings[0].plots == (("sr_vs_classification_depth.png", pytest.approx(findings[0].plots[0][1])),)
    assert set(files) == {"sr_vs_classification_depth.png", "sr_vs_classification_depth.svg"}
    assert files["sr_vs_classification_depth.png"].startswith(b"\x89PNG")
    assert b"<svg" in files["sr_vs_classification_depth.svg"][:400]
    assert images["sr_vs_classification_depth.png"] == files["sr_vs_classification_depth.png"]
    (tmp_path / "sr_vs_classification_depth.png").write_bytes(files["sr_vs_classification_depth.png"])
    _, again, _ = with_depth_plots([finding], {}, result, previous_dir=tmp_path)
    assert again["sr_vs_classification_depth.png"] == files["sr_vs_classification_depth.png"]
