"""CHI by degradation and by content against relative depth, for findings that measure every layer.

Networks differ in depth (23 RRDB blocks, 16 compact convolutions, 8 classifier blocks), so the
layer sweep of finding 4 ("SR features cluster by degradation, classification features by
content") is drawn against *relative* depth: 0 is a model's first block, 1 its deep tap (the
layer the paper reads). Where the deep tap is the last block's own module, that block is drawn
once, as the deep tap. The figure goes into the report as PNG and SVG beside findings.md and is
attached to the finding, so findings.md, leaderboard.md and report.html show it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ddr_eval.report.plots import DPI, ModelColors, keyed_figure_files, new_figure, plot_key, series_styles

DEEP = "deep"
LABELS = {"degradation": "-", "content": "--"}
"""Line style per label: solid for degradation, dashed for content."""


def depth_points(curves: Mapping[str, Sequence[Sequence[Any]]], layers_of: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Columns model, layer, depth, label, chi from a finding's ``curves`` (model -> [(layer,
    CHI by degradation, CHI by content)]); ``layers_of`` maps each model's shown layer names to
    module names, so a block that is the deep tap's module is kept once. Models with fewer than
    two distinct layers are left out."""
    from ddr_eval.report.html import layer_order

    rows = []
    for model, curve in curves.items():
        values = {layer: (deg, con) for layer, deg, con in curve}
        modules = layers_of.get(model, {})
        ordered = layer_order(list(values))
        if DEEP in ordered:  # the deep tap last, then no other name for its module
            ordered = [name for name in ordered if name != DEEP and modules.get(name) != modules.get(DEEP, DEEP)]
            ordered.append(DEEP)
        if len(ordered) < 2:
            continue
        for index, layer in enumerate(ordered):
            depth = index / (len(ordered) - 1)
            for label, value in zip(LABELS, values[layer]):
                rows.append({"model": model, "layer": layer, "depth": depth, "label": label, "chi": value})
    return pd.DataFrame(rows, columns=["model", "layer", "depth", "label", "chi"])


def depth_figure(points: pd.DataFrame, title: str, colors: ModelColors | None = None):
    """One axes: CHI (log scale) against relative depth; a colour per model (the report's, from
    ``colors``), a line style per label."""
    from matplotlib.lines import Line2D

    models = list(dict.fromkeys(points["model"]))
    colors = {model: color for model, (color, _) in series_styles(models, colors).items()}
    fig = new_figure(figsize=(7.2, 4.4), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    for (model, label), group in points.groupby(["model", "label"], sort=False):
        group = group.sort_values("depth")
        ax.plot(group["depth"], group["chi"], LABELS[label], color=colors[model], marker=".", markersize=4, linewidth=1.4)
    ax.set_yscale("log")
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("relative depth (0 = first block, 1 = deep tap)")
    ax.set_ylabel("CHI (Calinski-Harabasz index, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=colors[m], linewidth=2, label=m) for m in models]
    handles += [Line2D([], [], color="0.3", linestyle=style, label=f"CHI by {label}") for label, style in LABELS.items()]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def with_depth_plots(findings: list, images: Mapping[str, bytes] | None, result,
                     previous_dir=None, colors: ModelColors | None = None) -> tuple[list, dict[str, bytes], dict[str, bytes]]:
    """The findings with a depth figure attached to each that has per-layer ``curves``, the images
    (file name -> PNG, for the findings' sections) and the files to write (PNG and SVG).

    ``colors`` are the report's model colours. A PNG and SVG already in ``previous_dir`` drawn
    from the same points are reused byte for byte, without drawing.
    """
    images = dict(images or {})
    files: dict[str, bytes] = {}
    layers_of = {source.label: dict(source.layers) for source in result.sources}
    updated = []
    for finding in findings:
        curves = finding.numbers.get("curves")
        points = depth_points(curves, layers_of) if curves else pd.DataFrame()
        if points.empty:
            updated.append(finding)
            continue
        stem = f"{finding.key}_depth"
        title = "CHI by degradation and by content against relative depth"
        key = plot_key("depth", points.to_csv(index=False), title,
                       series_styles(dict.fromkeys(points["model"]), colors))
        previous = {ext: None if previous_dir is None else Path(previous_dir) / f"{stem}.{ext}" for ext in ("png", "svg")}
        png, svg = keyed_figure_files(key, lambda points=points, title=title: depth_figure(points, title, colors),
                                      previous["png"], previous["svg"])
        images[f"{stem}.png"] = files[f"{stem}.png"] = png
        files[f"{stem}.svg"] = svg
        updated.append(replace(finding, plots=(*finding.plots, (f"{stem}.png", title))))
    return updated, images, files
