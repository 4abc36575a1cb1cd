"""The Python API: evaluate a suite in a notebook or a script and get DataFrames back.

The CLI reads files and writes reports; a researcher usually holds an ``nn.Module`` in memory
instead. :func:`evaluate` runs the same pipeline as ``ddr-eval run`` (same inputs, same cells,
same caches, same numbers) on a suite given as a path, a dict or a ``Suite``, with models added
or replaced by zoo names, checkpoint paths or in-memory modules, and returns :class:`Results`
(pandas DataFrames, feature arrays, and ``.write(dir)`` for the CLI's report).

An in-memory module is checked before any work starts, like a checkpoint, and identified by
the sha256 of its weights (``ddr_eval/pipeline/in_memory.py``, where the caller's models are
merged into the suite). This module is the adapter from a run's typed result to DataFrames
(:class:`Results`) plus the metric functions a notebook calls on its own arrays.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ddr_eval.core.errors import UserError
from ddr_eval.features import FeatureBatch, extract_features
from ddr_eval.metrics.results import MetricResult
from ddr_eval.models import ModelDescriptor
from ddr_eval.pipeline.in_memory import (
    InMemoryModel,
    ModelInputError,
    device_of,
    input_channels,
    prepare,
    state_dict_sha256,  # noqa: F401  (public API: a module's cache identity)
)
from ddr_eval.results.run import RunResult

# --------------------------------------------------------------------------- results


def result_frames(run: RunResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The one adapter from a run's typed results to DataFrames: (every row, the leaderboard).

    Rows come from :class:`~ddr_eval.results.ResultRow` (``status`` says why a value is empty);
    the leaderboard is the run's one :class:`~ddr_eval.results.Leaderboard`, as every report reads it.
    """
    rows = pd.DataFrame([row.to_dict() for row in run.rows])
    board = pd.DataFrame(list(run.leaderboard.rows)) if run.leaderboard is not None else pd.DataFrame()
    return rows, board


class Results:
    """What :func:`evaluate` returns: the run's numbers as DataFrames, its features, its report.

    ``leaderboard`` has one row per (model, layer), ranked; ``rows`` has one row per (model,
    layer, metric, set) with the value, its 95% interval and a ``status`` (an empty value always
    says why). ``write(dir)`` writes the same report as ``ddr-eval run``.
    """

    def __init__(self, run: RunResult, *, use_cache: bool = True, cache_dir: Path | None = None,
                 progress: bool = False, executor=None):
        self.run = run
        self._use_cache = use_cache
        self._cache_dir = cache_dir
        self._progress = progress
        self._executor = executor

    def __repr__(self) -> str:
        return f"<Results of suite {self.run.suite.name}: {len(self.leaderboard)} leaderboard rows>\n{self.leaderboard}"

    @cached_property
    def _frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return result_frames(self.run)

    @property
    def rows(self) -> pd.DataFrame:
        return self._frames[0]

    @property
    def leaderboard(self) -> pd.DataFrame:
        return self._frames[1]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.run.provenance

    @cached_property
    def included(self) -> list["Results"]:
        """The runs of the suites ``findings.include`` names (loaded with this suite), each with
        its own seed and this run's cache settings, run when first asked for; their reports are
        not written."""
        return [evaluate(loaded, use_cache=self._use_cache, cache_dir=self._cache_dir, progress=self._progress,
                         executor=self._executor) for loaded in self.run.loaded.included]

    @cached_property
    def findings(self) -> list:
        """The paper findings the suite asks for (``findings:``), each with its verdict; else empty.
        Those of the suites it includes (``findings.include``) follow, each labelled with the
        suite that computed it (``FindingResult.suite``)."""
        from dataclasses import replace

        from ddr_eval.findings import compute_findings, suite_origin

        found = compute_findings(self.run)
        for results in self.included:
            origin = suite_origin(results.run)
            found += [replace(finding, suite=origin) for finding in results.findings]
        return found

    def _included_plots(self, target: Path) -> tuple[list, dict[str, bytes]]:
        """The findings with the t-SNE scatters of the included runs attached to the included
        findings that name those models (``FindingResult.plots``), and the PNGs by file name
        (``<included suite>_tsne_....png``; a file already in ``target`` drawn from the same
        inputs is reused)."""
        from dataclasses import replace

        from ddr_eval.report.writer import tsne_files
        from ddr_eval.results.format import slug

        findings, images = list(self.findings), {}
        if not self.run.suite.outputs.tsne_plots:
            return findings, images
        for results in self.included:
            run = results.run
            if not run.suite.outputs.tsne_plots:
                continue
            for i, finding in enumerate(findings):
                if finding.suite is None or finding.suite["file"] != run.loaded.source:
                    continue
                part = run.loaded.findings.part(finding.key)
                models = set(part.model_names()) if part is not None else set()
                files = tsne_files(run, target, models=models, prefix=f"{slug(run.suite.name)}_")
                images.update({name: png for name, (_, png) in files.items()})
                findings[i] = replace(finding, plots=tuple((name, f"{run.suite.name}: {caption}")
                                                           for name, (caption, _) in files.items()))
        return findings, images

    def features(self, model: str, layer: str = "deep", set: str | None = None, *, split: str | None = None,
                 pooling: str | None = None, metric: str | None = None) -> np.ndarray:
        """Features (N x D) of ``model`` at ``layer`` on degradation set ``set`` (default: the reference).

        Which pooling: ``pooling`` if given (``gap``, ``gmp``, ``mean_std``, ``flatten``); else the
        one the suite's metric ``metric`` (its name or type, e.g. ``"srga"``) reads, so the API
        function of that metric reproduces the leaderboard's number; else the suite's ``pooling``
        (``gap`` unless the suite says otherwise). :meth:`pooling_of` tells which one that is.
        Features a run did not need to extract (its metric results were cached) are extracted
        now, through the feature cache.
        """
        from ddr_eval.cache.store import FeatureCache
        from ddr_eval.pipeline.build import extract_cells
        from ddr_eval.pipeline.cells import make_cell

        run, suite = self.run, self.run.suite
        source = next((s for s in run.sources if s.label == model), None)
        if source is None:
            raise UserError(f"features: no model {model!r}; models: {', '.join(s.label for s in run.sources)}")
        if layer not in source.layers:
            raise UserError(f"features: model {model} has no layer {layer!r}; layers: {', '.join(source.layers)}")
        split = split or suite.data.eval_split
        sets = run.inputs.eval_sets if split == suite.data.eval_split else run.inputs.train_sets
        set = set or suite.reference_set
        if set not in sets:
            raise UserError(f"features: no degradation set {set!r} on split {split}; sets: {', '.join(sets)}")
        pooling = pooling or self.pooling_of(metric)
        cell = make_cell(source, sets[set], pooling)
        if cell.feature_key not in run.batches:  # the run needed no such cell: extract it now, into the run
            cache = FeatureCache(self._cache_dir, enabled=self._use_cache and suite.runtime.cache)
            extract_cells([cell], cache, batch_size=suite.runtime.batch_size,
                          device=device_of(source.descriptor.module) if source.descriptor else "cpu",
                          amp_dtype=suite.runtime.amp_dtype, into=run.batches)
        return np.asarray(run.batches[cell.feature_key].features[source.layers[layer]])

    def pooling_of(self, metric: str | None = None) -> str:
        """The pooling the suite's metric ``metric`` (name or type) reads; the suite's pooling for ``None``."""
        from ddr_eval.pipeline.reduce import metric_pooling

        suite = self.run.suite
        if metric is None:
            return suite.pooling
        metrics = self.run.loaded.metrics
        found = next((m for m in metrics if m.name == metric), None) or next(
            (m for m in metrics if m.metric_type == metric), None)
        if found is None:
            raise UserError(f"features: the suite has no metric {metric!r}; metrics: "
                            f"{', '.join(m.name for m in metrics)}")
        return metric_pooling(found, suite.pooling)

    def write(self, out_dir: str | Path | None = None, sections: Iterable = ()) -> Path:
        """Write the report (leaderboard.md, results.csv, results.json, plots, report.html, findings)
        into ``out_dir`` (default: the suite's ``reports/<name>``), exactly as ``ddr-eval run`` does."""
        from ddr_eval.pipeline.runner import check_report_dir
        from ddr_eval.report.writer import write_report

        target = Path(out_dir) if out_dir is not None else self.run.suite.output_dir()
        check_report_dir(target)
        findings, images = self._included_plots(target)
        return write_report(self.run, target, sections=sections, findings=findings, images=images)


def evaluate(suite: Any, models: Any = None, *, replace: bool = False, name: str | None = None,
             scale: int | None = None, layers: Sequence[str] | None = None, use_cache: bool = True,
             cache_dir: str | Path | None = None, progress: bool = False, executor=None) -> Results:
    """Run a suite, as ``ddr-eval run`` does, and return its :class:`Results`.

    ``suite`` is a YAML path, a dict or a ``Suite``. ``models`` (one or a list) adds models to the
    suite's, or replaces the one of the same name (all of them with ``replace=True``): zoo names
    (``"srresnet-gr"``), checkpoint paths, spec dicts (``{"name": "srresnet-gr", "iteration": 500}``),
    ``nn.Module`` objects, :class:`InMemoryModel` or ``ModelDescriptor``. ``name``, ``scale`` and
    ``layers`` (module names) describe bare modules. Every model is checked before the first
    forward pass, so bad input raises a :class:`~ddr_eval.core.errors.UserError` and nothing runs::

        results = ddr_eval.evaluate("suites/smoke.yaml", models=net, name="mine", layers=["body.7"])
        results.leaderboard            # DataFrame, ranked
        results.features("mine", "body.7", "blur")   # N x C array
        results.write("reports/mine")  # the CLI's report

    The feature and metric-result caches work as for the CLI (``use_cache``, ``cache_dir``).
    """
    from ddr_eval.pipeline.runner import run_suite

    loaded, run_models = prepare(suite, models, replace=replace, name=name, scale=scale, layers=layers)
    cache_dir = Path(cache_dir) if cache_dir is not None else None
    run = run_suite(loaded, use_cache=use_cache, cache_dir=cache_dir, progress=progress, executor=executor,
                    models=run_models)
    return Results(run, use_cache=use_cache, cache_dir=cache_dir, progress=progress, executor=executor)


# --------------------------------------------------------------------------- features and metrics


def extract(model: Any, lr_patches: np.ndarray, layers: Sequence[str] = ("deep",), pooling: str = "gap", *,
            batch_size: int = 64, device: str | None = None, return_outputs: bool = False) -> FeatureBatch:
    """Deep features of LR patches: ``.features[layer]`` is N x D (``gap``/``gmp``: one value per channel).

    ``model`` is an ``nn.Module``, a ``ModelDescriptor``, a zoo name or a checkpoint path;
    ``lr_patches`` a batch in [0, 1], RGB: a numpy array N,h,w,C (NHWC, ddr-eval's layout) or a
    torch tensor N,C,h,w (NCHW, PyTorch's), as a training loop holds it. ``layers`` are module names or,
    for ddr-eval's architectures, tap aliases (``deep`` = the body's output, before upsampling,
    where the DDR paper reads its features). Pooling over space is what turns a feature map into
    a *degradation representation*: content averages out, the degradation's statistics remain.
    The model runs in eval mode under ``torch.inference_mode`` and its mode is restored.
    """
    if isinstance(model, (str, Path)):
        from ddr_eval.models.zoo import resolve_model

        model = resolve_model(model)
    wrapped = InMemoryModel.from_descriptor(model, layers) if isinstance(model, ModelDescriptor) \
        else InMemoryModel(model, layers=layers, purpose="any")
    lr = as_nhwc(lr_patches)
    resolved = wrapped.resolve_layers(layers)
    expected = input_channels(wrapped.module)
    if expected is not None and expected != lr.shape[-1]:
        raise ModelInputError(f"model {wrapped.name}: takes {expected} input channels, lr_patches have {lr.shape[-1]} "
                              f"(shape {lr.shape}; NHWC expected)")
    batch = extract_features(wrapped.module, lr, list(resolved.values()), pooling, batch_size, device or
                             device_of(wrapped.module), return_outputs=return_outputs)
    return FeatureBatch({shown: batch.features[module] for shown, module in resolved.items()}, batch.outputs)


def as_nhwc(lr_patches) -> np.ndarray:
    """An LR batch as float32 NHWC numpy: torch tensors are read as NCHW, arrays as NHWC."""
    if isinstance(lr_patches, torch.Tensor):
        if lr_patches.ndim != 4:
            raise ModelInputError(f"lr_patches: expected an N,C,h,w tensor, got shape {tuple(lr_patches.shape)}")
        return lr_patches.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).contiguous().numpy()
    lr = np.asarray(lr_patches)
    if lr.ndim != 4:
        raise ModelInputError(f"lr_patches: expected an N,h,w,C array (or an N,C,h,w tensor), got shape {lr.shape}")
    return lr


def _separability(metric_type: str, features, labels, projection: str, seed: int, **params) -> MetricResult:
    from ddr_eval.metrics import build_metric

    return build_metric({"type": metric_type, "projection": projection, **params}).compute(
        np.asarray(features), np.asarray(labels), seed)


def chi(features, labels, projection: str = "raw", *, seed: int = 0, bootstrap: int = 200, pca_dim: int = 50) -> MetricResult:
    """Calinski–Harabasz index of ``features`` (N x D) grouped by ``labels`` (N,): higher = better separated.

    CHI is between-class dispersion over within-class dispersion, each divided by its degrees of
    freedom. On DDR it answers "do the features of one degradation sit together, apart from the
    others?": a network with a global residual scores an order of magnitude above one without.
    ``projection``: ``raw`` standardizes each feature first (else a channel with large activations
    dominates), ``pca`` then keeps ``pca_dim`` components, ``tsne`` uses a seeded 2-D embedding.
    Returns a ``MetricResult`` (``.value``, a 95% within-class bootstrap interval ``.ci_low``/``.ci_high``).
    """
    return _separability("chi", features, labels, projection, seed, bootstrap=bootstrap, pca_dim=pca_dim)


def silhouette(features, labels, projection: str = "raw", *, seed: int = 0, bootstrap: int = 200,
               pca_dim: int = 50) -> MetricResult:
    """Mean silhouette coefficient in [-1, 1]: how much closer each sample is to its own class than to the next.

    Unlike CHI it is bounded and compares distances point by point, so it penalises overlapping
    tails that a centroid-based index hides; it needs all pairwise distances (O(N²)). Parameters
    as for :func:`chi`.
    """
    return _separability("silhouette", features, labels, projection, seed, bootstrap=bootstrap, pca_dim=pca_dim)


def davies_bouldin(features, labels, projection: str = "raw", *, seed: int = 0, bootstrap: int = 200,
                   pca_dim: int = 50) -> MetricResult:
    """Davies–Bouldin index: the mean worst ratio of class scatter to centroid distance; lower = better."""
    return _separability("davies_bouldin", features, labels, projection, seed, bootstrap=bootstrap, pca_dim=pca_dim)


def srga(reference_features, test_features, pca_dim: int = 300, outlier_sigma: float = 5.0, *,
         pca_solver: str = "auto", seed: int = 0, bootstrap: int = 0) -> MetricResult:
    """SRGA, the published generalization index of a network on a degraded set: lower = generalizes better.

    Both sets (samples x features) go through PCA, a generalized Gaussian is fitted to each by
    moment matching, and the index is ``log10(KL(ref || test) + 1e-5) + 5``: how far the
    degradation moves the feature distribution away from the clean one. The published recipe
    (and a suite's ``srga``) reads *flattened* feature maps, not pooled ones: pass
    ``results.features(model, layer, set, metric="srga")`` to get the leaderboard's number;
    pooled features give a different, smaller index. Defaults are a suite's; returns a
    ``MetricResult`` like every feature metric here (``.value``; ``.extra`` holds the PCA
    dimension actually used, the solver and any fallback in ``warnings``).
    """
    from ddr_eval.metrics import build_metric

    metric = build_metric({"type": "srga", "pca_dim": pca_dim, "outlier_sigma": outlier_sigma,
                           "pca_solver": pca_solver, "bootstrap": bootstrap})
    return metric.compute(np.asarray(reference_features), np.asarray(test_features), seed)


def ddr_chi_to_reference(reference_features, test_features, *, seed: int = 0, bootstrap: int = 200) -> MetricResult:
    """CHI between the reference (clean) set's features and a degraded set's: how far the
    degradation moves the features; lower = the network generalizes better. Defaults are a suite's."""
    from ddr_eval.metrics import build_metric

    metric = build_metric({"type": "ddr_chi_to_reference", "bootstrap": bootstrap})
    return metric.compute(np.asarray(reference_features), np.asarray(test_features), seed)


def _as_uint8(image) -> np.ndarray:
    from ddr_eval.metrics.quality import to_uint8

    image = np.asarray(image)
    return image if image.dtype == np.uint8 else to_uint8(image)


def psnr(img1, img2, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """PSNR in dB between two HWC RGB images (uint8, or float in [0, 1]), with BasicSR's conventions.

    Float images are rounded to 8 bits first (as saved results are, so numbers match papers);
    SR papers crop ``crop_border = scale`` pixels, where the network sees padding, and measure
    the Y channel (BT.601), where the eye is most sensitive. ``inf`` for identical images.
    """
    from ddr_eval.metrics.quality import psnr as _psnr

    return _psnr(_as_uint8(img1), _as_uint8(img2), crop_border, test_y_channel)


def ssim(img1, img2, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """SSIM between two HWC RGB images (uint8 or float in [0, 1]; 11x11 Gaussian window, sigma 1.5).

    SSIM compares local means, contrasts and structure, so it tracks blur and ringing that PSNR
    averages away; the conventions (rounding, crop, Y channel) are those of :func:`psnr`.
    """
    from ddr_eval.metrics.quality import ssim as _ssim

    return _ssim(_as_uint8(img1), _as_uint8(img2), crop_border, test_y_channel)
