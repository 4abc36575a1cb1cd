"""The reduce step on hand-made inputs: seeds reach every metric that draws random numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ddr_eval.data.patches import PatchSet
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.metrics import PsnrMetric
from ddr_eval.metrics.quality import to_uint8
from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.reduce import Reducer


def _sr_source() -> FeatureSource:
    return FeatureSource("fake-sr", {"deep": "body"}, SimpleNamespace(purpose="sr", module=None))


def _quality_inputs(n_images: int = 6, size: int = 16):
    rng = np.random.default_rng(1)
    hr = rng.random((n_images, size, size, 3), dtype=np.float32)
    patches = PatchSet(hr=hr, image_index=np.arange(n_images), patch_index=np.zeros(n_images, dtype=np.int64),
                       image_names=tuple(f"img{i}" for i in range(n_images)))
    sets, features = {}, {}
    for name, noise in (("clean", 0.02), ("blur", 0.08)):
        sets[name] = DegradedSet(name, "test", hr[:, ::2, ::2], patches)
        outputs = np.clip(hr + rng.normal(0, noise, hr.shape), 0, 1).astype(np.float32)
        features[("fake-sr", "test", name, "gap")] = FeatureBatch(features={}, outputs=outputs)
    return SuiteInputs(sets, {}), features, hr


def test_quality_bootstrap_uses_the_suite_seed():
    inputs, features, hr = _quality_inputs()
    metric = PsnrMetric(bootstrap=50)
    rows = {}
    for seed in (0, 123):
        reducer = Reducer([_sr_source()], inputs, features, "clean", seed, "gap", scale=2)
        rows[seed] = next(r for r in reducer.run([metric]).rows if r.set == "blur")
    outputs = features[("fake-sr", "test", "blur", "gap")].outputs
    direct = metric.compute(to_uint8(outputs), to_uint8(hr), crop_border=2, test_y_channel=True, seed=123)
    assert (rows[123].ci_low, rows[123].ci_high) == (direct.ci_low, direct.ci_high)
    assert (rows[0].ci_low, rows[0].ci_high) != (rows[123].ci_low, rows[123].ci_high)
