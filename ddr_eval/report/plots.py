"""Figures for reports, drawn with matplotlib's non-interactive Agg backend.

Every ``*_figure`` function returns a closed-over :class:`~matplotlib.figure.Figure` built from
plain arrays or a tidy frame, so the same figure can be saved as PNG and SVG files next to the
report (:func:`keyed_figure_files`) and embedded in ``report.html`` (:func:`figure_png`). Figures
are created with :class:`~matplotlib.figure.Figure` directly, not ``pyplot``, so nothing is kept
in pyplot's global figure registry and report writing is safe to repeat in one process.

A reader compares models across figures by colour, so a report builds one model -> colour
mapping (:func:`model_colors`, in the leaderboard's order) and passes it to every figure that
draws models; a series ``"model / layer"`` takes its model's colour, and a model drawn on several
layers in one panel tells them apart by line style. Axes carry the metric's unit and direction
from the metric class itself (:func:`metric_axis_label`), so a label cannot disagree with the
leaderboard's header.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # matplotlib and pandas load on first use: a warm run that draws nothing skips them
    import pandas as pd
    from matplotlib.figure import Figure

from ddr_eval.results.format import slug  # noqa: F401  (file names of plots)

DPI = 110
PLOT_KEY = "ddr-eval-plot-key"
"""PNG text chunk holding the hash of what a figure was drawn from (see :func:`keyed_png`)."""
PLOT_STYLE = "2"
"""Bump when a figure function changes how it draws, so stored PNGs are redrawn."""


def new_figure(**kwargs) -> Figure:
    """A matplotlib Figure on the Agg backend (no display, no pyplot state); every figure here starts so."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _palette(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# -- one colour per model, units on every axis ---------------------------------------------------

ModelColors = Mapping[str, str]
"""Model name -> matplotlib colour (``#rrggbb``), the same in every figure of one report."""

_LINE_STYLES = ("-", "--", ":", "-.")


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """One colour per model, in the given order (a report passes its leaderboard's order, so the
    top-ranked model is always the first colour): tab10's colours, then their light shades from
    tab20, then round again. A model's colour depends only on its position, never on how many
    follow it, so appending models never recolours the ones before."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    tab20 = colormaps["tab20"]
    names = list(dict.fromkeys(models))
    return {name: to_hex(tab20((2 * i + (i // 10) % 2) % 20)) for i, name in enumerate(names)}


def series_model(series: str) -> str:
    """The model of a series name: ``"model / layer"`` -> ``"model"``; other names are models."""
    return series.split(" / ", 1)[0]


def series_styles(series: Iterable[str], colors: ModelColors | None = None) -> dict[str, tuple[str, str]]:
    """Series name -> (colour, line style): the colour of its model in ``colors``, the line style
    telling apart the layers of one model. Models ``colors`` does not name (or every model, with
    no ``colors``) take the palette's next colours, in order of appearance. A whole-network series
    (the bare model name) is solid; a model's layers take solid, dashed, dotted, ... in order."""
    names = list(dict.fromkeys(series))
    known = dict(colors or {})
    missing = [m for m in dict.fromkeys(series_model(n) for n in names) if m not in known]
    extended = model_colors([*known, *missing])
    styles, layers = {}, {}
    for name in names:
        model = series_model(name)
        color = known.get(model, extended[model])
        if name == model:  # the whole network (PSNR on the output): solid
            styles[name] = (color, "-")
            continue
        styles[name] = (color, _LINE_STYLES[layers.get(model, 0) % len(_LINE_STYLES)])
        layers[model] = layers.get(model, 0) + 1
    return styles


def _metric_class(metric: str):
    from ddr_eval.metrics import METRICS

    kind = metric.split("[", 1)[0]
    return METRICS.get(kind) if kind in METRICS else None


def _display_metric(metric: str) -> str:
    """``psnr`` -> ``PSNR``, ``chi[degradation,raw]`` -> ``CHI[degradation,raw]``: short
    registered type names are acronyms; longer ones (``silhouette``) stay words."""
    kind, bracket, rest = metric.partition("[")
    if _metric_class(metric) is not None and kind.isalpha() and len(kind) <= 5:
        kind = kind.upper()
    return kind + bracket + rest


def metric_axis_label(metric: str) -> str:
    """An axis label from the metric's own declarations: ``PSNR (dB; higher = better)``,
    ``SRGA (lower = generalizes better)``. Units whose leaderboard values are rescaled
    (parameters in M) are left off, since figures draw the raw values. A name that is no
    registered metric is returned as it is; a findings panel title ``6: psnr`` labels its metric."""
    prefix, colon, rest = metric.rpartition(": ")
    if colon and _metric_class(rest) is not None:
        return f"{prefix}: {metric_axis_label(rest)}"
    cls = _metric_class(metric)
    if cls is None:
        return metric
    direction = f"{'higher' if cls.higher_is_better else 'lower'} = {cls.better_means}"
    unit = cls.unit if cls.unit and cls.unit_scale == 1.0 else ""
    return f"{_display_metric(metric)} ({unit + '; ' if unit else ''}{direction})"


_SWEEP_AXES = {
    ("gaussian_blur", "sigma"): "blur sigma (pixels)",
    ("gaussian_blur", "sigma_x"): "blur sigma x (pixels)",
    ("gaussian_blur", "sigma_y"): "blur sigma y (pixels)",
    ("gaussian_noise", "sigma"): "noise sigma (0-255)",
    ("jpeg", "quality"): "JPEG quality (0-100, lower = stronger)",
    ("bicubic", "scale"): "downscale factor",
    ("resize", "scale"): "resize factor",
}


def sweep_axis_label(step: str, parameter: str) -> str:
    """A readable x label for a swept degradation parameter: ``gaussian_blur.sigma`` -> ``blur
    sigma (pixels)``; unknown steps read as their words (``poisson noise scale``)."""
    return _SWEEP_AXES.get((step, parameter), f"{step.replace('_', ' ')} {parameter.replace('_', ' ')}")


def figure_png(fig: Figure, key: str | None = None) -> bytes:
    """The figure as PNG bytes (no software tag, so identical figures give identical bytes);
    ``key``, if given, is stored in the PNG as the :data:`PLOT_KEY` text chunk."""
    buffer = io.BytesIO()
    metadata = {"Software": None, **({PLOT_KEY: key} if key else {})}
    fig.savefig(buffer, format="png", metadata=metadata)
    return buffer.getvalue()


def plot_key(kind: str, *parts: object) -> str:
    """sha256 of everything a figure is drawn from: arrays by dtype, shape and bytes, the rest by
    ``repr``, plus the figure kind, :data:`DPI`, :data:`PLOT_STYLE` and matplotlib's version."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"{kind}\0{DPI}\0{PLOT_STYLE}\0{version('matplotlib')}".encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            if array.dtype.hasobject:
                array = array.astype(str)
            digest.update(f"\0{array.dtype.str}{array.shape}".encode() + array.view(np.uint8).tobytes())
        else:
            digest.update(f"\0{part!r}".encode())
    return digest.hexdigest()


def stored_plot_key(path: Path | io.BytesIO) -> str | None:
    """The :data:`PLOT_KEY` of a PNG written by :func:`figure_png`, or ``None`` (no file, no key,
    not a PNG). Reads the header chunks only, not the image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.info.get(PLOT_KEY) if image.format == "PNG" else None
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def stored_plot_key_bytes(png: bytes) -> str | None:
    """:func:`stored_plot_key` of PNG bytes."""
    return stored_plot_key(io.BytesIO(png))


def keyed_png(key: str, draw, previous: Path | None = None) -> bytes:
    """PNG bytes of ``draw()`` (a figure), or the bytes of ``previous`` when that PNG was drawn
    from the same inputs (its stored key equals ``key``).

    A warm run of an unchanged suite has the same embeddings, so its t-SNE scatters would be
    redrawn pixel for pixel; matplotlib's layout and rasterising are most of what writing a
    report costs then. A changed input, title or style changes the key and redraws.
    """
    if previous is not None and stored_plot_key(previous) == key:
        return Path(previous).read_bytes()
    return figure_png(draw(), key)


def save_figure(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.write_bytes(figure_png(fig))
    return path


def figure_svg(fig: Figure, key: str | None = None) -> bytes:
    """The figure as SVG bytes: no date, element ids salted with ``key`` (matplotlib's default
    salt is random), so identical figures give identical files; ``key`` is also stored as the
    document's Dublin Core identifier, where :func:`stored_svg_key` finds it."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": key or PLOT_KEY}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, **({"Identifier": key} if key else {})})
    return buffer.getvalue()


_SVG_KEY = re.compile(rb"<dc:identifier>([0-9a-f]{64})</dc:identifier>")


def stored_svg_key(path: Path) -> str | None:
    """The key :func:`figure_svg` stored in an SVG file (in its header), or ``None``."""
    try:
        with open(path, "rb") as handle:
            match = _SVG_KEY.search(handle.read(8192))
    except OSError:
        return None
    return match.group(1).decode("ascii") if match else None


def keyed_figure_files(key: str, draw: Callable[[], Figure], previous_png: bytes | Path | None = None,
                       previous_svg: Path | None = None) -> tuple[bytes, bytes]:
    """(PNG, SVG) of ``draw()``, drawn at most once; when both earlier files were drawn from the
    same inputs (their stored keys equal ``key``) they are returned as they are, and nothing is
    drawn. ``previous_png`` is a file or the bytes of a PNG (one embedded in report.html)."""
    if isinstance(previous_png, (str, Path)):
        previous_png = Path(previous_png).read_bytes() if stored_plot_key(Path(previous_png)) == key else None
    if previous_png is not None and stored_plot_key_bytes(previous_png) == key \
            and previous_svg is not None and stored_svg_key(previous_svg) == key:
        return previous_png, Path(previous_svg).read_bytes()
    figure = draw()
    return figure_png(figure, key), figure_svg(figure, key)


# -- t-SNE ---------------------------------------------------------------------------------------


def tsne_figure(xy: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """A 2-D embedding coloured by label (degradation type or content)."""
    labels = np.asarray(labels)
    fig = new_figure(figsize=(5, 4.5), dpi=DPI)
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


def tsne_png(xy: np.ndarray, labels: np.ndarray, title: str, previous: Path | None = None) -> bytes:
    """:func:`tsne_figure` as PNG bytes, reusing ``previous`` when drawn from the same inputs."""
    xy, labels = np.asarray(xy), np.asarray(labels)
    key = plot_key("tsne", xy, labels, title)
    return keyed_png(key, lambda: tsne_figure(xy, labels, title), previous)


def tsne_scatter(xy: np.ndarray, labels: np.ndarray, title: str, path: Path) -> Path:
    """Write :func:`tsne_figure` to ``path``."""
    return save_figure(tsne_figure(xy, labels, title), path)


def tsne_plot_name(model: str, layer: str, label: str) -> str:
    return f"tsne_{slug(model)}_{slug(layer)}_{label}.png"


# -- curves --------------------------------------------------------------------------------------


def _curve_axes(n_panels: int, width: float = 4.2, height: float = 3.2):
    columns = min(n_panels, 3)
    rows = int(np.ceil(n_panels / columns))
    fig = new_figure(figsize=(width * columns, height * rows), dpi=DPI)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _draw_series(ax, x, group: pd.DataFrame, label: str, style: tuple[str, str]) -> None:
    color, line = style
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.plot(x, group["value"], marker="o", markersize=3.5, color=color, linestyle=line, label=label)
    if group["ci_low"].notna().all() and group["ci_high"].notna().all():
        ax.fill_between(x, group["ci_low"], group["ci_high"], color=color, alpha=0.15, linewidth=0)


def _label_axes(ax, metric: str, xlabel: str) -> None:
    ax.set_title(_display_metric(metric), fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(metric_axis_label(metric), fontsize=8)


def training_curves_figure(points: pd.DataFrame, colors: ModelColors | None = None) -> Figure:
    """DDR over training: one panel per metric, metric value against training iteration.

    ``points`` has columns series, iteration, metric, value, ci_low, ci_high (one row per
    snapshot); each series (a zoo entry, or ``entry / layer``) is one line in its model's colour
    from ``colors``, with its bootstrap interval as a band where every point has one.
    """
    metrics = list(dict.fromkeys(points["metric"]))
    styles = series_styles(points["series"], colors)
    fig, axes = _curve_axes(len(metrics))
    for ax, metric in zip(axes, metrics):
        for name, group in points[points["metric"] == metric].groupby("series", sort=False):
            group = group.sort_values("iteration")
            _draw_series(ax, group["iteration"].to_numpy(), group, str(name), styles[name])
        _label_axes(ax, metric, "training iteration")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def layer_sweep_figure(points: pd.DataFrame, layer_order: Sequence[str], colors: ModelColors | None = None) -> Figure:
    """Layer sweep: one panel per metric, metric value against the tapped layer, a line per model
    in its colour from ``colors``.

    ``points`` has columns model, layer, metric, value, ci_low, ci_high; ``layer_order`` is
    the x axis (shallow to deep).
    """
    metrics = list(dict.fromkeys(points["metric"]))
    styles = series_styles(points["model"], colors)
    position = {layer: i for i, layer in enumerate(layer_order)}
    fig, axes = _curve_axes(len(metrics), width=max(4.2, 0.45 * len(layer_order) + 2))
    for ax, metric in zip(axes, metrics):
        for model, group in points[points["metric"] == metric].groupby("model", sort=False):
            group = group.assign(position=group["layer"].map(position)).sort_values("position")
            _draw_series(ax, group["position"].to_numpy(), group, str(model), styles[model])
        ax.set_xticks(range(len(layer_order)))
        ax.set_xticklabels(layer_order, rotation=45, ha="right", fontsize=7)
        _label_axes(ax, metric, "tapped layer (shallow to deep)")
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
    fig = new_figure(figsize=(size + 1.2, size), dpi=DPI)
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


def quality_vs_srga_figure(points: pd.DataFrame, colors: ModelColors | None = None) -> Figure:
    """PSNR against SRGA, one point per (model, degradation set): colour = model, marker = set.

    The SRGA authors advise reading SRGA among models of similar image quality; this plot puts
    both axes side by side so a low SRGA bought with a PSNR collapse is visible at a glance.
    ``points`` has columns model, set, srga, psnr; ``colors`` the report's model colours.
    """
    models = list(dict.fromkeys(points["model"]))
    sets = list(dict.fromkeys(points["set"]))
    colors = {model: color for model, (color, _) in series_styles(models, colors).items()}
    markers = {name: _MARKERS[i % len(_MARKERS)] for i, name in enumerate(sets)}
    fig = new_figure(figsize=(6.4, 4.6), dpi=DPI)
    ax = fig.subplots()
    for row in points.itertuples(index=False):
        ax.scatter(row.srga, row.psnr, color=colors[row.model], marker=markers[row.set], s=36)
    handles = [ax.scatter([], [], color=colors[m], marker="o", label=m) for m in models]
    handles += [ax.scatter([], [], color="#555", marker=markers[s], label=s) for s in sets]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(metric_axis_label("srga"), fontsize=8)
    ax.set_ylabel(metric_axis_label("psnr"), fontsize=8)
    ax.set_title("PSNR against SRGA per model and degradation set", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def strength_curves_figure(points: pd.DataFrame, colors: ModelColors | None = None) -> Figure:
    """Metric against degradation strength for swept parameters: one panel per (sweep, metric),
    one line per series (``model`` or ``model / layer``) in its model's colour from ``colors``,
    bootstrap bands where every point has one.

    ``points`` has columns series, sweep, parameter (the x axis label), x, metric, value,
    ci_low, ci_high.
    """
    panels = list(dict.fromkeys(zip(points["sweep"], points["parameter"], points["metric"])))
    styles = series_styles(points["series"], colors)
    fig, axes = _curve_axes(len(panels))
    for ax, (sweep, parameter, metric) in zip(axes, panels):
        panel = points[(points["sweep"] == sweep) & (points["parameter"] == parameter) & (points["metric"] == metric)]
        for name, group in panel.groupby("series", sort=False):
            group = group.sort_values("x")
            _draw_series(ax, group["x"].to_numpy(), group, str(name), styles[name])
        _label_axes(ax, metric, parameter)
        ax.set_title(f"{_display_metric(metric)} on {sweep}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def training_curves_plot(frame: pd.DataFrame, path: Path | None = None) -> Figure:
    """A training log's headline values (pooled values and per-set summaries) against iteration,
    one line per model and layer, saved to ``path`` if given (``DDRMonitor.plot``)."""
    from ddr_eval.report.tables import headline_rows

    points = headline_rows(frame)
    figure = training_curves_figure(points.assign(series=points["model"] + " / " + points["layer"]))
    if path is not None:
        save_figure(figure, Path(path))
    return figure
