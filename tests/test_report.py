"""report.html and the report writer: sections, best-per-column marks, self-containment, atomicity,
and (when Debian's chromium is installed) that the page renders with every image decoded."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ddr_eval.models.archs import ARCHS
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.report import writer
from ddr_eval.report.depth import depth_figure, depth_points
from ddr_eval.report.html import (
    html_table,
    layer_order,
    layer_sweep_points,
    quality_vs_srga_points,
    render_html,
    report_colors,
    strength_points,
    training_points,
    tsne_labels,
)
from ddr_eval.report.plots import (
    figure_png,
    layer_sweep_figure,
    quality_vs_srga_figure,
    series_model,
    strength_curves_figure,
    training_curves_figure,
)
from ddr_eval.report.tables import format_value, rows_frame
from ddr_eval.results import Leaderboard, ReportSection, resolve_ranking
from ddr_eval.results.leaderboard import infos_from_rows
from ddr_eval.config.schema import RankBy
from ddr_eval.config.loader import compile_suite

REPO = Path(__file__).resolve().parents[1]
TINY = dict(num_feat=8, num_block=2, upscale=2)
SETS = ["clean", "blur", "noise"]


def tiny_suite(checkpoints: list[Path], labels: list[str], **overrides) -> dict:
    suite = {
        "name": "tiny-report",
        "description": "a <tiny> suite & its report",
        "seed": 0,
        "data": {"patch_size": 16, "patches_per_image": 2},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
            {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 20}]},
        ],
        "models": [{"path": str(p), "as": label} for p, label in zip(checkpoints, labels)]
        + [{"baseline": "image_statistics"}],
        "layers": ["sweep"],
        "metrics": [
            {"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10},
            {"type": "srga", "pca_dim": 8},
            {"type": "psnr"},
            {"type": "identification"},
        ],
    }
    suite.update(overrides)
    return suite


@pytest.fixture(scope="module")
def run_result(tmp_path_factory):
    """One real run: two training 'snapshots' of a tiny SRResNet, every block tapped, plus a baseline.

    t-SNE metrics take tens of seconds even on 50 points, so the embeddings the report draws are
    added afterwards from a seeded generator; the report's job is to draw whatever the run holds.
    """
    root = tmp_path_factory.mktemp("report")
    paths = []
    for i in range(2):
        torch.manual_seed(i)
        paths.append(root / f"snap{i}.safetensors")
        save_model(paths[-1], ARCHS.get("MSRResNet")(**TINY), "MSRResNet", TINY)
    loaded = compile_suite(tiny_suite(paths, ["tiny@100", "tiny@200"]), "tiny-report")
    result = run_suite(loaded, cache_dir=root / "cache", progress=False)
    rng = np.random.default_rng(0)
    n = len(SETS) * 8
    for model in ("tiny@100", "tiny@200"):
        result.embeddings[(model, "block1")] = {
            "xy": rng.normal(size=(n, 2)), "degradation": np.repeat(SETS, 8), "content": np.tile(list("abcd"), 6)}
    return result


@pytest.fixture(scope="module")
def written(run_result, tmp_path_factory):
    """The run's report directory, written once, with an extra (compare-like) section."""
    extra = ReportSection("Compare: mine", "rank 2 of 3", pd.DataFrame({"metric": ["chi"], "delta": ["+1 (better)"]}))
    return writer.write_report(run_result, tmp_path_factory.mktemp("written") / "rep", sections=[extra])


@pytest.fixture
def light_result(run_result):
    """The run without figures to draw, for tests about files rather than pictures."""
    rows = [r for r in run_result.rows if r.layer in ("block0", "stats", "output")]
    return dataclasses.replace(run_result, rows=rows, embeddings={}, confusions=[])


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.ids, self.external, self.best = [], [], [], []
        self._in_best = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs["src"])
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for name in ("src", "href"):
            if attrs.get(name) and not attrs[name].startswith(("data:", "#")):
                self.external.append(attrs[name])
        self._in_best = tag == "strong" and attrs.get("class") == "best"

    def handle_data(self, data):
        if self._in_best:
            self.best.append(data)
            self._in_best = False


def parse(text: str) -> _Images:
    parser = _Images()
    parser.feed(text)
    return parser


# -- data shaping ---------------------------------------------------------------------------------


def _row(model, layer, metric, set_name, value, higher=True, kind="separability"):
    return {"model": model, "layer": layer, "metric": metric, "type": metric, "kind": kind, "set": set_name,
            "value": value, "ci_low": None, "ci_high": None, "higher_is_better": higher, "aggregation": "mean",
            "status": "ok"}


def test_training_points_parse_iterations_and_drop_lone_snapshots():
    rows = [_row("gr@100", "deep", "chi", "all", 1.0), _row("gr@500", "deep", "chi", "all", 2.0),
            _row("gr@250", "deep", "chi", "all", 1.5), _row("gr", "deep", "chi", "all", 9.0),
            _row("nogr@100", "deep", "chi", "all", 3.0),  # one snapshot only: not a curve
            _row("gr@100", "deep", "srga", "blur", 7.0, kind="generalization")]  # not a summary set
    points = training_points(rows_frame(rows))
    assert list(points["series"].unique()) == ["gr"]
    assert sorted(points["iteration"]) == [100, 250, 500]
    assert dict(zip(points["iteration"], points["value"])) == {100: 1.0, 500: 2.0, 250: 1.5}


def test_training_points_use_the_deepest_layer_and_the_output():
    rows = [_row(f"gr@{i}", layer, "chi", "all", float(i)) for i in (1, 2) for layer in ("block1", "deep", "block0")]
    rows += [_row(f"gr@{i}", "output", "psnr", "mean", 30.0 + i, kind="quality") for i in (1, 2)]
    points = training_points(rows_frame(rows))
    assert set(zip(points["metric"], points["layer"])) == {("chi", "deep"), ("psnr", "output")}
    assert set(points["series"]) == {"gr"}


def test_layer_order_is_shallow_to_deep():
    assert layer_order(["deep", "block10", "block2", "block0", "deep"]) == ["block0", "block2", "block10", "deep"]


def test_layer_sweep_points_keep_multi_layer_models_only():
    rows = [_row("a", "block0", "chi", "all", 1.0), _row("a", "block1", "chi", "all", 2.0),
            _row("b", "deep", "chi", "all", 3.0), _row("a", "output", "psnr", "mean", 30.0, kind="quality"),
            _row("b", "model", "params", "all", 1e5, higher=False, kind="efficiency")]
    points = layer_sweep_points(rows_frame(rows))
    assert set(zip(points["model"], points["layer"])) == {("a", "block0"), ("a", "block1")}


def test_psnr_against_srga_pairs_each_model_and_set():
    rows = [_row("a", "block0", "srga", "blur", 9.0, False, "generalization"),
            _row("a", "deep", "srga", "blur", 4.0, False, "generalization"),
            _row("a", "deep", "srga", "mean", 4.0, False, "generalization"),  # a summary: not a point
            _row("a", "output", "psnr", "blur", 28.0, kind="quality"),
            _row("a", "output", "psnr", "clean", 33.0, kind="quality"),  # no SRGA on the reference
            _row("b", "deep", "srga", "blur", 5.0, False, "generalization")]  # no PSNR: not a point
    points = quality_vs_srga_points(rows_frame(rows))
    assert points.to_dict("records") == [{"model": "a", "set": "blur", "srga": 4.0, "psnr": 28.0}]
    assert figure_png(quality_vs_srga_figure(points)).startswith(b"\x89PNG")


def _sweep_suite():
    return compile_suite({
        "name": "t", "models": ["srresnet-gr"], "metrics": [{"type": "srga"}],
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": [1, 3, 1]}},
                                                    {"type": "bicubic", "scale": 2}]}]}, "t.yaml").suite


def _sweep_rows(model="a", layers=("deep",)):
    rows = [_row(model, layer, "srga", f"blur_sigma{s}", 1.0 + s + i, False, "generalization")
            for i, layer in enumerate(layers) for s in (1, 2, 3)]
    rows += [_row(model, "output", "psnr", f"blur_sigma{s}", 30.0 - s, kind="quality") for s in (1, 2, 3)]
    return rows + [_row(model, "output", "psnr", "clean", 34.0, kind="quality")]


def test_strength_points_place_swept_sets_at_their_value():
    points = strength_points(rows_frame(_sweep_rows()), _sweep_suite())
    assert sorted(zip(points["series"], points["x"], points["value"])) == [
        ("a", 1.0, 29.0), ("a", 2.0, 28.0), ("a", 3.0, 27.0),
        ("a / deep", 1.0, 2.0), ("a / deep", 2.0, 3.0), ("a / deep", 3.0, 4.0)]
    assert set(points["parameter"]) == {"blur sigma (pixels)"} and set(points["sweep"]) == {"blur"}
    assert figure_png(strength_curves_figure(points)).startswith(b"\x89PNG")


def test_tsne_labels_add_content_only_when_a_content_metric_ran(run_result):
    assert tsne_labels(run_result) == ["degradation"]

    class WithContent:
        rows = run_result.rows + [dataclasses.replace(run_result.rows[0], extra={"label": "content"})]

    assert tsne_labels(WithContent) == ["degradation", "content"]


def test_html_table_marks_exactly_the_best_cells_and_escapes():
    frame = pd.DataFrame({"model": ["<a>", "b", "c"], "up": [1.0, 3.0, 2.0], "down": [5.0, 4.0, 6.0]})
    table = html_table(frame, {"up": 3.0, "down": 4.0})
    assert parse(table).best == ["3", "4"]
    assert "&lt;a&gt;" in table and "<a>" not in table


# -- the report ---------------------------------------------------------------------------------


def _expected_images(result) -> int:
    tsne = len(result.embeddings) * len(tsne_labels(result))
    # + training curves + layer sweep + PSNR against SRGA + one per confusion
    return tsne + 1 + 1 + 1 + len(result.confusions)


def test_report_html_is_self_contained_with_every_section(run_result, written):
    out = written
    text = (out / "report.html").read_text(encoding="utf-8")
    page = parse(text)
    assert page.external == []
    assert {"leaderboard", "per-set", "psnr-vs-srga", "tsne", "training", "layers", "confusion",
            "extra-0"} <= set(page.ids)
    assert len(page.sources) == _expected_images(run_result) > 0
    assert f'content="{len(page.sources)}"' in text
    for source in page.sources:
        assert source.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert "a &lt;tiny&gt; suite &amp; its report" in text
    assert "Compare: mine" in text and "Compare: mine" in (out / "leaderboard.md").read_text()
    assert {"leaderboard.md", "results.csv", "results.json", "report.html"} <= {p.name for p in out.iterdir()}


def test_leaderboard_rank_ignores_wall_clock_columns():
    def row(model, metric, kind, value, higher, layer="deep"):
        return {"model": model, "layer": layer, "metric": metric, "type": metric.split("[")[0], "kind": kind,
                "set": "all", "value": value, "ci_low": None, "ci_high": None, "higher_is_better": higher}

    rows = []
    for model, chi, ms, params in (("fast", 1.0, 1.0, 10.0), ("slow", 2.0, 9.0, 10.0)):
        rows += [row(model, "chi[degradation,raw]", "separability", chi, True),
                 row(model, "latency[32x32]", "efficiency", ms, False, "model"),
                 row(model, "params", "efficiency", params, False, "model")]
    infos = infos_from_rows(rows)
    ranking = resolve_ranking([RankBy(metric="chi"), RankBy(metric="params")], infos)
    board = {r["model"]: r for r in Leaderboard.build(rows, infos, ranking).rows}
    assert board["slow"]["rank"] == 1 and board["fast"]["rank"] == 2  # by CHI; latency would tie them
    assert board["fast"]["latency[32x32]"] == 1.0  # still shown
    with pytest.raises(Exception, match="measures this machine"):
        resolve_ranking([RankBy(metric="latency")], infos)


def test_best_value_per_leaderboard_column_is_marked(run_result, written):
    rows = [r for r in run_result.rows if r.metric.startswith("chi") and r.value is not None]
    best_chi = max(r.value for r in rows)  # CHI: higher is better
    srga = [r.value for r in run_result.rows if r.metric.startswith("srga") and r.set == "mean"]
    best_srga = min(srga)  # SRGA: lower is better
    marked = parse((written / "report.html").read_text(encoding="utf-8")).best
    assert format_value(best_chi) in marked
    assert format_value(best_srga) in marked


def test_html_obeys_outputs_html_switch(light_result, tmp_path):
    suite = light_result.suite
    off = suite.model_copy(update={"outputs": suite.outputs.model_copy(update={"html": False})})
    result = dataclasses.replace(light_result, loaded=dataclasses.replace(light_result.loaded, suite=off))
    out = writer.write_report(result, tmp_path / "rep")
    assert not (out / "report.html").exists() and (out / "results.json").exists()


def test_interrupted_write_leaves_the_previous_report_intact(light_result, tmp_path, monkeypatch):
    out = writer.write_report(light_result, tmp_path / "rep")
    (out / "baseline.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "render_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.write_report(light_result, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp dir, nothing half-written
    monkeypatch.undo()
    writer.write_report(light_result, out)
    assert (out / "baseline.json").read_text() == "{}"  # files the run does not write survive


# -- one colour per model, labelled axes, figures as files ----------------------------------------


def _drawn_lines(fig):
    """(axes, line) of every labelled data line on a visible panel."""
    return [(ax, line) for ax in fig.axes if ax.get_visible() for line in ax.get_lines()
            if not line.get_label().startswith("_")]


def test_a_model_keeps_its_colour_in_every_figure_of_a_report(run_result):
    """Training curves, layer sweep, strength curves, PSNR-vs-SRGA and the depth figure all take a
    model's colour from the one mapping the report builds in the leaderboard's order."""
    from matplotlib.colors import to_hex

    colors = report_colors(run_result)
    board = list(dict.fromkeys(r["model"] for r in run_result.leaderboard.rows))
    assert list(colors)[:len(board)] == board and "tiny" in colors  # the training series too
    frame = rows_frame(run_result.rows)
    sweep = layer_sweep_points(frame)
    strength = strength_points(rows_frame(_sweep_rows("tiny@100", ("block0", "block1"))), _sweep_suite())
    figures = [training_curves_figure(training_points(frame), colors),
               layer_sweep_figure(sweep, layer_order(sweep["layer"]), colors),
               strength_curves_figure(strength, colors)]
    lines = [(ax, line) for fig in figures for ax, line in _drawn_lines(fig)]
    assert len(lines) >= 6
    for _, line in lines:
        assert to_hex(line.get_color()) == colors[series_model(line.get_label())], line.get_label()
    styles = {line.get_label(): line.get_linestyle() for _, line in lines if line.get_label().startswith("tiny@100 / ")}
    assert len(set(styles.values())) == 2  # two layers of one model: one colour, two line styles

    depth = depth_figure(depth_points({"tiny@200": [("block0", 3.0, 1.0), ("block1", 2.0, 2.0)]}, {}), "t", colors)
    assert {to_hex(line.get_color()) for line in depth.axes[0].get_lines()} == {colors["tiny@200"]}
    pairs = pd.DataFrame({"model": ["tiny@200", "tiny@100"], "set": ["blur", "blur"], "srga": [1.0, 2.0],
                          "psnr": [27.0, 26.0]})
    dots = quality_vs_srga_figure(pairs, colors).axes[0].collections[:2]
    assert [to_hex(dot.get_facecolor()[0]) for dot in dots] == [colors["tiny@200"], colors["tiny@100"]]


def test_every_panel_has_a_title_and_axis_labels_with_units():
    strength = strength_points(rows_frame(_sweep_rows()), _sweep_suite())
    fig = strength_curves_figure(strength)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2 and all(ax.get_title() for ax in panels)
    assert {ax.get_xlabel() for ax in panels} == {"blur sigma (pixels)"}
    assert {ax.get_ylabel() for ax in panels} == {"PSNR (dB; higher = better)", "SRGA (lower = generalizes better)"}
    pairs = quality_vs_srga_figure(pd.DataFrame({"model": ["a"], "set": ["blur"], "srga": [1.0], "psnr": [27.0]}))
    assert pairs.axes[0].get_ylabel() == "PSNR (dB; higher = better)"


def test_every_figure_of_the_page_is_saved_as_png_and_svg_beside_it(run_result, written):
    import json

    plots = json.loads((written / "results.json").read_text())["plots"]
    assert all((written / name).is_file() for name in plots)
    figures = sorted(name[:-4] for name in plots if name.startswith("fig_") and name.endswith(".png"))
    assert {"fig_psnr_vs_srga", "fig_training", "fig_layers"} <= set(figures)
    assert len([f for f in figures if f.startswith("fig_confusion_")]) == len(run_result.confusions) > 0
    # every embedded figure but the t-SNE scatters (saved already) is one of them
    assert len(figures) == _expected_images(run_result) - len(run_result.embeddings) * len(tsne_labels(run_result))
    for stem in figures:
        assert f"{stem}.svg" in plots
        assert (written / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (written / f"{stem}.svg").read_bytes()[:1000]


def test_an_unchanged_report_reuses_its_figure_files_without_drawing(run_result, written, tmp_path, monkeypatch):
    from ddr_eval.report import html

    out = tmp_path / "again"
    shutil.copytree(written, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("fig_")}
    for name in ("training_curves_figure", "layer_sweep_figure", "quality_vs_srga_figure", "confusion_figure"):
        monkeypatch.setattr(html, name, lambda *a, name=name, **k: pytest.fail(f"{name} drawn again"))
    extra = ReportSection("Compare: mine", "rank 2 of 3", pd.DataFrame({"metric": ["chi"], "delta": ["+1 (better)"]}))
    writer.write_report(run_result, out, sections=[extra])
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("fig_")} == before


# -- headless chromium ----------------------------------------------------------------------------

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


def _check_html(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "check_html.py"), str(path), *args],
                          capture_output=True, text=True, timeout=300)


@needs_chromium
def test_report_renders_in_headless_chromium(run_result, written, tmp_path):
    shot = tmp_path / "shot.png"
    done = _check_html(written / "report.html", "--screenshot", str(shot))
    assert done.returncode == 0, done.stderr
    assert f"{_expected_images(run_result)} images decoded, leaderboard fits 1400 px" in done.stdout
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # something was drawn, not a blank page


@needs_chromium
def test_chromium_check_fails_on_an_undecodable_image(written, tmp_path):
    text = (written / "report.html").read_text(encoding="utf-8")
    broken = re.sub(r'data:image/png;base64,[^"]+', "data:image/png;base64,iVBORw0KGgoAAAA", text, count=1)
    (tmp_path / "report.html").write_text(broken, encoding="utf-8")
    done = _check_html(tmp_path / "report.html")
    assert done.returncode == 1
    assert "not every image decoded" in done.stderr


@needs_chromium
def test_the_widest_shipped_leaderboard_fits_1400_px_and_a_wider_one_is_caught(light_result, tmp_path):
    """reports/paper's board (11 metric columns, long metric names) shows every column in a
    1400 px window; the same page with headers that may not wrap fails the check."""
    import json

    board = Leaderboard.from_dict(json.loads((REPO / "reports" / "paper" / "results.json").read_text())["leaderboard"])
    assert len(board.columns) >= 10
    page = render_html(dataclasses.replace(light_result, leaderboard=board))
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    done = _check_html(tmp_path / "report.html", "--width", "1400")
    assert done.returncode == 0 and "leaderboard fits 1400 px" in done.stdout, done.stderr
    stiff = page.replace("</head>", "<style>th { white-space: nowrap !important; max-width: none !important; "
                         "overflow-wrap: normal !important; }</style></head>")
    (tmp_path / "stiff.html").write_text(stiff, encoding="utf-8")
    done = _check_html(tmp_path / "stiff.html", "--width", "1400")
    assert done.returncode == 1 and "columns scroll out of view" in done.stderr


def test_results_json_holds_the_one_leaderboard_every_output_shows(run_result, written):
    import json

    document = json.loads((written / "results.json").read_text())
    assert document["leaderboard"] == json.loads(json.dumps(run_result.leaderboard.to_dict()))
    board = document["leaderboard"]["rows"]
    markdown = (written / "leaderboard.md").read_text()
    section = markdown.split("## Leaderboard")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]
    shown = [(cells[0], cells[1], cells[2]) for cells in
             ([c.strip() for c in line.strip("|").split("|")] for line in table)]
    labels = [run_result.leaderboard.rank_label(r) for r in board]
    assert shown == [(r["model"], r["layer"], label) for r, label in zip(board, labels)]
    headers = [c["header"] for c in document["leaderboard"]["columns"]]
    assert any(h.startswith("psnr, mean of ") and h.endswith(" degraded sets (dB)") for h in headers)
    assert all(h in markdown for h in headers)


@needs_chromium
@pytest.mark.parametrize("name", ["paper-robustness", "paper-x4-robustness"])
def test_the_shipped_sweep_report_draws_its_strength_curves_in_chromium(name):
    """suites/paper-robustness.yaml and paper-x4-robustness.yaml sweep blur, noise and JPEG
    ({sweep: ...}); each committed report.html has the metric-vs-strength section, and every image
    in it decodes."""
    report = REPO / "reports" / name / "report.html"
    text = report.read_text(encoding="utf-8")
    section = text[text.index('<h2 id="strength"'):]
    assert "data:image/png;base64," in section.split("<h2", 2)[1]
    done = _check_html(report)
    assert done.returncode == 0, done.stderr
