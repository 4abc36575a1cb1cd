"""Figures for reports, drawn with matplotlib's non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def tsne_scatter(xy: np.ndarray, labels: np.ndarray, title: str, path: Path) -> Path:
    """A 2-D embedding coloured by label (degradation type or content)."""
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=110)
    cmap = plt.get_cmap("tab10" if len(set(labels)) <= 10 else "tab20")
    for i, label in enumerate(dict.fromkeys(labels)):
        mask = labels == label
        ax.scatter(xy[mask, 0], xy[mask, 1], s=9, alpha=0.75, color=cmap(i % cmap.N), label=str(label))
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, loc="best", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def tsne_plot_name(model: str, layer: str, label: str) -> str:
    return f"tsne_{_slug(model)}_{_slug(layer)}_{label}.png"
