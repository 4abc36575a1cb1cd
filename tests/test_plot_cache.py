"""Unchanged t-SNE scatters are not redrawn: the PNG's stored key decides (report/plots.py)."""

import numpy as np
import pytest

from ddr_eval.report import plots


@pytest.fixture
def drawn(monkeypatch):
    """Counts the figures actually drawn."""
    calls = []
    real = plots.tsne_figure
    monkeypatch.setattr(plots, "tsne_figure", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    return calls


def embedding(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(30, 2)), np.array(["clean", "blur", "noise"] * 10)


def test_same_inputs_reuse_the_stored_png(tmp_path, drawn):
    xy, labels = embedding()
    path = tmp_path / "tsne.png"
    path.write_bytes(plots.tsne_png(xy, labels, "m / deep"))
    assert len(drawn) == 1 and plots.stored_plot_key(path) == plots.plot_key("tsne", xy, labels, "m / deep")
    again = plots.tsne_png(xy.copy(), labels.copy(), "m / deep", previous=path)
    assert len(drawn) == 1 and again == path.read_bytes()


@pytest.mark.parametrize("change", ["point", "label", "title"])
def test_a_changed_input_redraws(tmp_path, drawn, change):
    xy, labels = embedding()
    path = tmp_path / "tsne.png"
    path.write_bytes(plots.tsne_png(xy, labels, "m / deep"))
    title = "m / deep"
    if change == "point":
        xy = xy.copy()
        xy[3, 1] += 1e-9
    elif change == "label":
        labels = labels.copy()
        labels[0] = "jpeg"
    else:
        title = "m / shallow"
    redrawn = plots.tsne_png(xy, labels, title, previous=path)
    assert len(drawn) == 2
    assert plots.stored_plot_key_bytes(redrawn) == plots.plot_key("tsne", xy, labels, title)


def test_a_png_without_key_or_a_broken_file_is_redrawn(tmp_path, drawn):
    xy, labels = embedding()
    plain = tmp_path / "plain.png"
    plain.write_bytes(plots.figure_png(plots.tsne_figure(xy, labels, "t")))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    for previous in (plain, broken, tmp_path / "missing.png"):
        plots.tsne_png(xy, labels, "t", previous=previous)
    assert len(drawn) == 4


def test_report_html_figures_are_reused_when_their_data_is_unchanged(tmp_path, monkeypatch):
    """The PSNR-vs-SRGA figure of report.html is drawn once; the next page takes it from the last
    report.html (by its stored key), and a changed point redraws it."""
    import pandas as pd

    from ddr_eval.report import html

    calls = []
    real = html.quality_vs_srga_figure
    monkeypatch.setattr(html, "quality_vs_srga_figure", lambda points: calls.append(1) or real(points))
    points = pd.DataFrame({"model": ["a", "b"], "set": ["blur", "blur"], "srga": [1.0, 2.0], "psnr": [27.0, 26.5]})

    def page_for(frame, previous=None):
        page = html._Page(html.embedded_pngs(previous))
        page.figure("quality_vs_srga", lambda: html.quality_vs_srga_figure(frame), "caption", frame)
        path = tmp_path / "report.html"
        path.write_text("\n".join(page.parts))
        return path

    first = page_for(points)
    first_text = first.read_text()
    assert len(calls) == 1 and html.embedded_pngs(first)
    assert page_for(points, first).read_text() == first_text and len(calls) == 1
    moved = points.assign(psnr=[27.0, 26.6])
    page_for(moved, first)
    assert len(calls) == 2


def test_figure_files_are_reused_only_when_both_carry_the_key(tmp_path, drawn):
    """The PNG and SVG written beside a report: identical bytes for identical inputs (no date, a
    fixed SVG id salt), and drawn again when either file is missing or from other inputs."""
    xy, labels = embedding()
    key = plots.plot_key("tsne", xy, labels, "t")
    draw = lambda: plots.tsne_figure(xy, labels, "t")
    png, svg = plots.keyed_figure_files(key, draw)
    assert plots.keyed_figure_files(key, draw) == (png, svg) and len(drawn) == 2
    (tmp_path / "f.png").write_bytes(png)
    (tmp_path / "f.svg").write_bytes(svg)
    assert plots.stored_svg_key(tmp_path / "f.svg") == key
    assert plots.keyed_figure_files(key, draw, tmp_path / "f.png", tmp_path / "f.svg") == (png, svg)
    assert len(drawn) == 2  # nothing drawn
    other = plots.plot_key("tsne", xy, labels, "other")
    plots.keyed_figure_files(other, draw, tmp_path / "f.png", tmp_path / "f.svg")
    (tmp_path / "f.svg").unlink()
    plots.keyed_figure_files(key, draw, tmp_path / "f.png", tmp_path / "f.svg")
    assert len(drawn) == 4
