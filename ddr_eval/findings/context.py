"""What findings read from a run: one reader over a :class:`~ddr_eval.results.run.RunResult`.

Every finding reads through a :class:`FindingContext`: CHI of a model's features over some sets
(with both intervals), metric rows, PSNR on the clean set, a training series' snapshots, SR
outputs scored per patch, and means with a bootstrap over source photographs. It goes through
``RunResult``'s own methods (``features``, ``image_names``, ``row_value``), so no finding builds
a feature key by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ddr_eval.core.errors import UserError
from ddr_eval.findings.base import Estimate
from ddr_eval.metrics.bootstrap import ImageGroups
from ddr_eval.metrics.separability import ChiMetric
from ddr_eval.results.run import MissingFeatures
from ddr_eval.core.specs import SnapshotLabel
from ddr_eval.config.findings_spec import FindingsSpec, Thresholds

if TYPE_CHECKING:
    from ddr_eval.results.run import RunResult


class FindingContext:
    """A run and its ``findings:`` section, read the way findings need it."""

    def __init__(self, result: "RunResult", spec: FindingsSpec):
        self.result = result
        self.spec = spec
        # both intervals: [patches] for comparison with earlier reports, {images} (cluster bootstrap
        # over source photographs, stratified by set) for the verdicts
        self.chi = ChiMetric(projection="raw", bootstrap=spec.bootstrap, interval="both" if spec.bootstrap else "patches")

    @property
    def thresholds(self) -> Thresholds:
        return self.spec.thresholds

    @property
    def layer(self) -> str:
        """The layer findings read when a model has it (``findings.layer``, default ``deep``)."""
        return self.spec.layer

    def source(self, label: str):
        try:
            return self.result.source(label)
        except MissingFeatures:
            raise UserError(f"findings name model {label!r}, which the suite does not list") from None

    def features(self, label: str, set_name: str, layer: str | None = None) -> np.ndarray:
        """``label``'s features on one set at ``layer`` (default: ``findings.layer`` when the
        model has it, else its first layer)."""
        source = self.source(label)
        layer = layer or (self.layer if self.layer in source.layers else next(iter(source.layers)))
        if not self.result.has_features(label, set_name):
            raise UserError(f"findings name degradation set {set_name!r}, which the suite does not list")
        return self.result.features(label, layer, set_name)

    def chi_by(self, label: str, sets: Sequence[str], by: str = "degradation", layer: str | None = None) -> Estimate:
        """CHI of ``label``'s features over ``sets``, labelled by degradation set or by source
        photograph (``by="content"``), with the patch interval and, when bootstrapped, the one
        over source photographs (stratified by set)."""
        xs, labels, images, strata = [], [], [], []
        for name in sets:
            x = self.features(label, name, layer)
            xs.append(x)
            names = list(self.result.image_names(name))
            images += names
            strata += [name] * len(x)
            labels += [name] * len(x) if by == "degradation" else names
        groups = ImageGroups(np.asarray(images), np.asarray(strata)) if self.chi.wants_images else None
        return Estimate.of(self.chi.compute(np.concatenate(xs), np.asarray(labels), self.result.suite.seed, groups=groups))

    def row_value(self, model: str, metric_type: str, set_name: str) -> float | None:
        return self.result.row_value(model, metric_type, set_name)

    def rows(self, metric_type: str) -> list:
        """The run's rows of one metric type that have a value."""
        return [r for r in self.result.rows if r.type == metric_type and r.value is not None]

    def psnr(self, model: str) -> float | None:
        """PSNR on the clean (reference) set, when the suite computes it for ``model``."""
        return self.row_value(model, "psnr", self.result.suite.reference_set)

    def snapshots(self, series: str) -> list[tuple[int, str]]:
        """(iteration, label) of the ``series@iteration`` snapshots the suite lists, in training order."""
        found = [(snapshot.iteration, source.label) for source in self.result.sources
                 if (snapshot := SnapshotLabel.parse(source.label)) and snapshot.series == series]
        return sorted(found)

    def image_names(self, set_name: str) -> np.ndarray:
        return self.result.image_names(set_name)

    def patch_quality(self, label: str, set_name: str) -> dict[str, np.ndarray]:
        """Y-channel PSNR and SSIM per patch (crop border = scale) of ``label`` on ``set_name``;
        an oracle-conditioned model is told the set's true blur and noise sigmas first."""
        from ddr_eval.degradations.chain import blur_and_noise_sigmas
        from ddr_eval.features import select_device
        from ddr_eval.metrics.quality import psnr, ssim, to_uint8

        source = self.source(label)
        module = source.descriptor.module
        dataset = self.result.degraded_set(set_name)
        if getattr(module, "condition", None) == "oracle":
            (chain,) = [d.chain for d in self.result.suite.degradations if d.name == set_name]
            module.set_condition(blur_and_noise_sigmas(chain))
        runtime = self.result.suite.runtime
        outputs = source.extract(dataset.lr, self.result.suite.pooling, runtime.batch_size,
                                 select_device(runtime.device), runtime.amp_dtype, outputs=True).outputs
        scale = self.result.loaded.scale
        pairs = [(to_uint8(sr), to_uint8(hr)) for sr, hr in zip(outputs, dataset.patches.hr)]
        return {"psnr": np.array([psnr(a, b, crop_border=scale, test_y_channel=True) for a, b in pairs]),
                "ssim": np.array([ssim(a, b, crop_border=scale, test_y_channel=True) for a, b in pairs])}

    def mean_interval(self, values: np.ndarray, images: np.ndarray, decimals: int = 2, signed: bool = False) -> Estimate:
        """The mean of per-patch values and its 95% interval from a bootstrap over source
        photographs (patches of one photograph are not independent), seeded by the suite."""
        from ddr_eval.metrics.bootstrap import cluster_bootstrap_mean_interval, image_bootstrap_rng

        values = np.asarray(values, dtype=np.float64)
        low, high = cluster_bootstrap_mean_interval(values, images, None, self.spec.bootstrap,
                                                    image_bootstrap_rng(self.result.suite.seed))
        return Estimate(float(values.mean()), low, high, decimals=decimals, signed=signed)
