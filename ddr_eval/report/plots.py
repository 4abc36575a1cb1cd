"""Figures for reports, drawn with matplotlib's non-interactive Agg backend.

Every ``*_figure`` function returns a closed-over :class:`~matplotlib.figure.Figure` built from
plain arrays or a tidy frame, so the same figure can be saved as a PNG file next to the
report (:func:`save_figure`) or embedded in ``report.html`` (:func:`figure_png`). Figures are
created with :class:`~matplotlib.figure.Figure` directly, not ``pyplot``, so nothing is kept
in pyplot's global figure registry and report writing is safe to repeat in one process.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ddr_eval.results.format import slug  # noqa: F401  (file names of plots)

DPI = 110


def _palette(n: int):
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (metadata-free, so identical figures give identical bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def save_figure(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.write_bytes(figure_png(fig))
    return path


# -- t-SNE ---------------------------------------------------------------------------------------


def tsne_figure(xy: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """A 2-D embedding coloured by label (degradation type or content)."""
    labels = np.asarray(labels)
    fig = Figure(figsize=(5, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    classes = list(dict.fromkeys(labels.tolist()))
    for label, color in zip(classes, _palette(len(classes))):
        mask = labels == label
        ax.scatter(xy[mask, 0], xy[mask, 1], s=9, alpha=0.75, color=color, label=str(label))
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, loc="best", frameon=False)
    fig.tight_layout()
    return fig


def tsne_scatter(xy: np.ndarray, labels: np.ndarray, title: str, path: Path) -> Path:
    """Write :func:`tsne_figure` to ``path``."""
    return save_figure(tsne_figure(xy, labels, title), path)


def tsne_plot_name(model: str, layer: str, label: str) -> str:
    return f"tsne_{slug(model)}_{slug(layer)}_{label}.png"


# -- curves --------------------------------------------------------------------------------------


def _curve_axes(n_panels: int, width: float = 4.2, height: float = 3.2):
    columns = min(n_panels, 3)
    rows = int(np.ceil(n_panels / columns))
    fig = Figure(figsize=(width * columns, height * rows), dpi=DPI)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _draw_series(ax, x, group: pd.DataFrame, label: str, color) -> None:
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.plot(x, group["value"], marker="o", markersize=3.5, color=color, label=label)
    if group["ci_low"].notna().all() and group["ci_high"].notna().all():
        ax.fill_between(x, group["ci_low"], group["ci_high"], color=color, alpha=0.15, linewidth=0)


def training_curves_figure(points: pd.DataFrame) -> Figure:
    """DDR over training: one panel per metric, metric value against training iteration.

    ``points`` has columns series, iteration, metric, value, ci_low, ci_high (one row per
    snapshot); each series (a zoo entry and layer) is one line, with its bootstrap interval
    as a band where every point has one.
    """
    metrics = list(dict.fromkeys(points["metric"]))
    series = list(dict.fromkeys(points["series"]))
    colors = dict(zip(series, _palette(len(series))))
    fig, axes = _curve_axes(len(metrics))
    for ax, metric in zip(axes, metrics):
        for name, group in points[points["metric"] == metric].groupby("series", sort=False):
            group = group.sort_values("iteration")
            _draw_series(ax, group["iteration"].to_numpy(), group, str(name), colors[name])
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("training iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def layer_sweep_figure(points: pd.DataFrame, layer_order: Sequence[str]) -> Figure:
    """Layer sweep: one panel per metric, metric value against the tapped layer, a line per model.

    ``points`` has columns model, layer, metric, value, ci_low, ci_high; ``layer_order`` is
    the x axis (shallow to deep).
    """
    metrics = list(dict.fromkeys(points["metric"]))
    models = list(dict.fromkeys(points["model"]))
    colors = dict(zip(models, _palette(len(models))))
    position = {layer: i for i, layer in enumerate(layer_order)}
    fig, axes = _curve_axes(len(metrics), width=max(4.2, 0.45 * len(layer_order) + 2))
    for ax, metric in zip(axes, metrics):
        for model, group in points[points["metric"] == metric].groupby("model", sort=False):
            group = group.assign(position=group["layer"].map(position)).sort_values("position")
            _draw_series(ax, group["position"].to_numpy(), group, str(model), colors[model])
        ax.set_xticks(range(len(layer_order)))
        ax.set_xticklabels(layer_order, rotation=45, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


# -- confusion matrices --------------------------------------------------------------------------


def confusion_figure(classes: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> Figure:
    """A confusion-matrix heatmap: colour = row-normalised rate (recall per true class), text = count."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 1.6 + 0.55 * len(classes)
    fig = Figure(figsize=(size + 1.2, size), dpi=DPI)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=8,
                color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels(classes, fontsize=8)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="rate per true class")
    fig.tight_layout()
    return fig


# -- generalization ------------------------------------------------------------------------------

_MARKERS = "osD^v<>pPX*h"


def quality_vs_srga_figure(points: pd.DataFrame) -> Figure:
    """PSNR against SRGA, one point per (model, degradation set): colour = model, marker = set.

    The SRGA authors advise reading SRGA among models of similar image quality; this plot puts
    both axes side by side so a low SRGA bought with a PSNR collapse is visible at a glance.
    ``points`` has columns model, set, srga, psnr.
    """
    models = list(dict.fromkeys(points["model"]))
    sets = list(dict.fromkeys(points["set"]))
    colors = dict(zip(models, _palette(len(models))))
    markers = {name: _MARKERS[i % len(_MARKERS)] for i, name in enumerate(sets)}
    fig = Figure(figsize=(6.4, 4.6), dpi=DPI)
    ax = fig.subplots()
    for row in points.itertuples(index=False):
        ax.scatter(row.srga, row.psnr, color=colors[row.model], marker=markers[row.set], s=36)
    handles = [ax.scatter([], [], color=colors[m], marker="o", label=m) for m in models]
    handles += [ax.scatter([], [], color="#555", marker=markers[s], label=s) for s in sets]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel("SRGA (lower: generalizes better)", fontsize=8)
    ax.set_ylabel("PSNR (dB)", fontsize=8)
    ax.set_title("PSNR against SRGA per model and degradation set", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def strength_curves_figure(points: pd.DataFrame) -> Figure:
    """Metric against degradation strength for swept parameters: one panel per (sweep, metric),
    one line per model, bootstrap bands where every point has one.

    ``points`` has columns series, sweep, parameter, x, metric, value, ci_low, ci_high.
    """
    panels = list(dict.fromkeys(zip(points["sweep"], points["parameter"], points["metric"])))
    series = list(dict.fromkeys(points["series"]))
    colors = dict(zip(series, _palette(len(series))))
    fig, axes = _curve_axes(len(panels))
    for ax, (sweep, parameter, metric) in zip(axes, panels):
        panel = points[(points["sweep"] == sweep) & (points["parameter"] == parameter) & (points["metric"] == metric)]
        for name, group in panel.groupby("series", sort=False):
            group = group.sort_values("x")
            _draw_series(ax, group["x"].to_numpy(), group, str(name), colors[name])
        ax.set_title(f"{metric} on {sweep}", fontsize=9)
        ax.set_xlabel(parameter, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
