"""``report.html``: one self-contained page with every table and plot of a run.

The page must open offline, from an e-mail attachment or a CI artifact, years later. So
plots are base64 PNG ``data:`` URIs, styles and the one script are inline, and a
Content-Security-Policy forbids the browser from fetching anything else: a stray external
reference fails loudly in the headless check (``scripts/check_html.py``) instead of
silently depending on the network.

The inline script marks ``<body data-images-loaded="true">`` once every ``<img>`` has
decoded (``naturalWidth > 0``), which is what the headless check looks for; it also records by
how many pixels the leaderboard is wider than its box (``data-board-overflow``): the board must
show every column at 1400 px without scrolling sideways (wrapped headers, compact cells, and a
sticky model column for the wider per-set tables).
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
from PIL import Image
from tabulate import tabulate

from ddr_eval.report.plots import (
    ModelColors,
    confusion_figure,
    figure_png,
    keyed_figure_files,
    layer_sweep_figure,
    model_colors,
    plot_key,
    quality_vs_srga_figure,
    series_model,
    stored_plot_key_bytes,
    strength_curves_figure,
    sweep_axis_label,
    training_curves_figure,
    tsne_plot_name,
    tsne_png,
)
from ddr_eval.report.tables import (
    best_per_column,
    board_best,
    board_frame,
    directions,
    format_value,
    headline_rows,
    per_set_table,
    rows_frame,
    run_notes,
    set_rows,
)
from ddr_eval.metrics.results import OUTPUT_LAYER, WHOLE_NETWORK_LAYERS
from ddr_eval.results import ReportSection
from ddr_eval.results.format import slug
from ddr_eval.core.specs import SnapshotLabel

BLOCK_LAYER = re.compile(r"^block(\d+)$")
IMAGES_META = "ddr-eval:images"

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1320px;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.4rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
nav a { margin-right: 1rem; } code { background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; }
table { border-collapse: separate; border-spacing: 0; margin: .6rem 0 1.2rem; font-size: .82rem;
        font-variant-numeric: tabular-nums; }
th, td { border: solid #d8d8d8; border-width: 0 1px 1px 0; padding: .2rem .4rem; text-align: right; white-space: nowrap; }
tr > :first-child { border-left-width: 1px; } tr:first-child > * { border-top-width: 1px; }
th { background: #f5f5f5; white-space: normal; overflow-wrap: anywhere; min-width: 3.5rem; max-width: 6.5rem;
     vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; position: sticky; left: 0; z-index: 1; background: #fff; }
th:first-child { background: #f5f5f5; }
.table { overflow-x: auto; }
.best { font-weight: 700; color: #0b5d1e; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.grid img { width: 370px; }
figure { margin: 0; } figcaption { font-size: .8rem; color: #555; text-align: center; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: .9rem; } details { margin: 1rem 0; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-decoded", String(decoded));
  if (decoded === images.length) { document.body.setAttribute("data-images-loaded", "true"); }
  var board = document.querySelector("#leaderboard ~ .table");
  if (board) {
    document.body.setAttribute("data-board-overflow", String(Math.max(0, board.scrollWidth - board.clientWidth)));
  }
});
"""


# -- data shaping (pure, tested) -----------------------------------------------------------------


def tsne_labels(result) -> list[str]:
    """Which labels to colour t-SNE scatters by: degradation always, content when the suite scores it."""
    asks_content = any(row.extra.get("label") == "content" for row in result.rows)
    return ["degradation", "content"] if asks_content else ["degradation"]


TsneKey = tuple[str, str, str]  # model, layer, label


def tsne_pngs(result, previous_dir: Path | None = None, models=None, prefix: str = "") -> dict[TsneKey, bytes]:
    """Every t-SNE scatter of the run (of ``models`` only, when given) as PNG bytes (drawn once,
    saved as files and embedded); a PNG in ``previous_dir`` named ``prefix`` + its usual name and
    drawn from the same inputs is reused (see ``plots.keyed_png``)."""
    pngs = {}
    for (model, layer), data in result.embeddings.items():
        if models is not None and model not in models:
            continue
        for label in tsne_labels(result):
            if label in data:
                title = f"{model} / {layer}: t-SNE by {label}"
                name = prefix + tsne_plot_name(model, layer, label)
                previous = Path(previous_dir) / name if previous_dir else None
                pngs[(model, layer, label)] = tsne_png(data["xy"], data[label], title, previous)
    return pngs


def training_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Summary values of training-snapshot models (labelled ``name@iteration``), one row per snapshot.

    Columns: series, iteration, layer, metric, value, ci_low, ci_high. A series is a zoo entry
    on its deepest tapped layer (the layer sweep shows the others; one line per layer here would
    bury the curve). Series with fewer than two snapshots are dropped (one point is not a curve).
    """
    columns = ["series", "iteration", "layer", "metric", "value", "ci_low", "ci_high"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    summary = headline_rows(frame)
    labels = [SnapshotLabel.parse(model) for model in summary["model"]]
    snapshots = summary[[label is not None for label in labels]].assign(
        series=[label.series for label in labels if label], iteration=[label.iteration for label in labels if label])
    if snapshots.empty:
        return pd.DataFrame(columns=columns)
    whole = snapshots["layer"].isin(WHOLE_NETWORK_LAYERS)
    deepest = {series: layer_order(group["layer"])[-1] for series, group in snapshots[~whole].groupby("series")}
    keep = whole | (snapshots["layer"] == snapshots["series"].map(deepest))
    snapshots = snapshots[keep]
    counts = snapshots.groupby(["series", "metric"])["iteration"].transform("nunique")
    return snapshots[counts >= 2][columns].reset_index(drop=True)


def layer_order(layers: Iterable[str]) -> list[str]:
    """Shallow to deep: ``block<i>`` taps by index, then named taps in the order they appeared."""
    unique = list(dict.fromkeys(layers))
    blocks = sorted((name for name in unique if BLOCK_LAYER.match(name)),
                    key=lambda name: int(BLOCK_LAYER.match(name).group(1)))
    return blocks + [name for name in unique if not BLOCK_LAYER.match(name)]


def layer_sweep_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Summary values of models evaluated on more than one feature layer (columns as the frame's)."""
    if frame.empty:
        return frame
    summary = headline_rows(frame)
    summary = summary[~summary["layer"].isin(WHOLE_NETWORK_LAYERS)]
    layers_per_model = summary.groupby("model")["layer"].transform("nunique")
    return summary[layers_per_model > 1][["model", "layer", "metric", "value", "ci_low", "ci_high"]]


def quality_vs_srga_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (model, degradation set): its SRGA (on the model's deepest tapped layer) and its PSNR.

    Columns model, set, srga, psnr; only pairs that have both values.
    """
    columns = ["model", "set", "srga", "psnr"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    per_set = set_rows(frame)
    srga = per_set[per_set["type"] == "srga"]
    if srga.empty:
        return pd.DataFrame(columns=columns)
    deepest = {model: layer_order(group["layer"])[-1] for model, group in srga.groupby("model")}
    srga = srga[srga["layer"] == srga["model"].map(deepest)]
    psnr = per_set[per_set["type"] == "psnr"]
    joined = srga[["model", "set", "value"]].rename(columns={"value": "srga"}).merge(
        psnr[["model", "set", "value"]].rename(columns={"value": "psnr"}), on=["model", "set"])
    return joined[columns].reset_index(drop=True)


def strength_points(frame: pd.DataFrame, suite) -> pd.DataFrame:
    """Per-set metric values on the sets a sweep generated, placed at their swept value.

    Columns series (the model, with its layer for feature metrics), sweep (the set name as
    written), parameter (the swept parameter as an axis label: ``blur sigma (pixels)``), x (the
    swept value), metric, value, ci_low, ci_high.
    """
    columns = ["series", "sweep", "parameter", "x", "metric", "value", "ci_low", "ci_high"]
    points = {d.name: d.sweep for d in suite.degradations if d.sweep is not None}
    if frame.empty or not points:
        return pd.DataFrame(columns=columns)
    per_set = set_rows(frame)
    per_set = per_set[per_set["set"].isin(points)]
    if per_set.empty:
        return pd.DataFrame(columns=columns)
    whole = per_set["layer"].isin(WHOLE_NETWORK_LAYERS)
    series = per_set["model"].where(whole, per_set["model"] + " / " + per_set["layer"])
    return per_set.assign(
        series=series,
        sweep=per_set["set"].map(lambda s: points[s].group),
        parameter=per_set["set"].map(lambda s: sweep_axis_label(points[s].step, points[s].parameter)),
        x=per_set["set"].map(lambda s: points[s].value),
    )[columns].reset_index(drop=True)


def report_colors(result, sections: Iterable[ReportSection] = ()) -> dict[str, str]:
    """The one model -> colour mapping of a report (see ``plots.model_colors``): the leaderboard's
    models in rank order first, then any other model of the rows, then the training series
    (``name`` of ``name@iteration`` snapshots) and the models of the sections' strength curves."""
    names = [row["model"] for row in result.leaderboard.rows]
    names += [row.model for row in result.rows]
    names += [snapshot.series for name in names if (snapshot := SnapshotLabel.parse(name))]
    for section in sections:
        if section.curves is not None and len(section.curves):
            names += [series_model(str(series)) for series in section.curves["series"]]
    return model_colors(names)


# -- HTML pieces ---------------------------------------------------------------------------------


def _is_best(value: Any, best: Any) -> bool:
    return best is not None and value is not None and not pd.isna(value) and value == best


def html_table(frame: pd.DataFrame, best: dict[str, Any] | None = None) -> str:
    """An escaped HTML table; values equal to ``best[column]`` are bold with class ``best``."""
    if frame is None or frame.empty:
        return '<p class="note">no values</p>'
    best = best or {}
    body = []
    for record in frame.to_dict("records"):
        cells = []
        for column, value in record.items():
            text = escape(format_value(value))
            cells.append(f'<strong class="best">{text}</strong>' if _is_best(value, best.get(column)) else text)
        body.append(cells)
    headers = [_breakable(str(c)) for c in frame.columns]
    table = tabulate(body, headers=headers, tablefmt="unsafehtml", disable_numparse=True)
    return f'<div class="table">{table}</div>'


def _breakable(header: str) -> str:
    """Escaped header with line-break opportunities inside metric names like ``chi[degradation,raw]``
    and ``ddr_chi_to_reference``."""
    return escape(header).replace("[", "[<wbr>").replace(",", ",<wbr>").replace("_", "_<wbr>")


class _Page:
    """Accumulates sections, counts the images it embeds and collects its figures as files.

    ``previous`` maps plot keys to the PNGs of the last report.html: a figure drawn from the
    same inputs is taken from there instead of being drawn again (see ``plots.keyed_png``).
    With ``files`` (a dict), every figure is also put there as ``<name>.png`` and ``<name>.svg``
    for the writer to save beside the report; an SVG is reused from ``previous_dir`` (the
    report directory) when drawn from the same inputs, else the figure is drawn once for both.
    ``colors`` is the report's model -> colour mapping, handed to every figure that draws models.
    """

    def __init__(self, previous: dict[str, bytes] | None = None, colors: ModelColors | None = None,
                 files: dict[str, bytes] | None = None, previous_dir: Path | None = None):
        self.parts: list[str] = []
        self.nav: list[tuple[str, str]] = []
        self.images = 0
        self.previous = previous or {}
        self.colors = dict(colors or {})
        self.files = files
        self.previous_dir = Path(previous_dir) if previous_dir is not None else None

    def section(self, anchor: str, title: str) -> None:
        self.nav.append((anchor, title))
        self.parts.append(f'<h2 id="{escape(anchor)}">{escape(title)}</h2>')

    def add(self, html: str) -> None:
        self.parts.append(html)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{escape(text)}</p>')

    def figure(self, kind: str, draw: Callable[[], Any], caption: str, *inputs: object, name: str | None = None) -> None:
        """Embed ``draw()``, keyed by ``kind``, everything it is drawn from (frames as CSV) and the
        model colours; saved as ``name`` (default ``fig_<kind>``) .png and .svg when collecting files."""
        key = plot_key(kind, *(part.to_csv(index=False) if isinstance(part, pd.DataFrame) else part
                               for part in inputs), sorted(self.colors.items()))
        png = self.previous.get(key)
        if self.files is None:
            self.png(png if png is not None else figure_png(draw(), key), caption)
            return
        name = name or f"fig_{kind}"
        previous = {ext: self.previous_dir / f"{name}.{ext}" if self.previous_dir else None for ext in ("png", "svg")}
        png, svg = keyed_figure_files(key, draw, png if png is not None else previous["png"], previous["svg"])
        self.files[f"{name}.png"], self.files[f"{name}.svg"] = png, svg
        self.png(png, caption)

    def png(self, png: bytes, caption: str) -> None:
        data = base64.b64encode(png).decode("ascii")
        with Image.open(io.BytesIO(png)) as image:
            width, height = image.size
        self.images += 1
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}" '
                          f'width="{width}" height="{height}"><figcaption>{escape(caption)}</figcaption></figure>')


def _header(result) -> str:
    prov = result.provenance
    code = prov.get("code", {})
    cache = prov.get("cache", {})
    results = prov.get("results_cache", {})
    items = [
        f"suite sha256 <code>{escape(prov.get('suite_sha256', '?'))}</code> (seed {escape(str(prov.get('seed')))})",
        f"code commit <code>{escape(str(code.get('commit')))}</code>"
        + (" (with uncommitted changes)" if code.get("dirty") else ""),
        f"device {escape(str(prov.get('device')))}; {escape(str(prov.get('cells')))} cells; "
        f"feature cache {cache.get('hits', 0)} hits / {cache.get('misses', 0)} misses; "
        f"metric results cached {results.get('hits', 0)} / computed {results.get('misses', 0)}; "
        f"{result.timings.get('total', 0):.1f} s",
        *(escape(note) for note in run_notes(result)),
    ]
    return (f"<h1>ddr-eval: {escape(result.suite.name)}</h1>"
            f"<p>{escape(result.suite.description)}</p><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")


def _leaderboard(result, page: _Page) -> None:
    page.section("leaderboard", "Leaderboard")
    board = result.leaderboard
    page.note("Summary per model: pooled metrics over all degradation sets; per-set metrics aggregated over the "
              f"non-reference sets (reference: {result.suite.reference_set}). {board.explain()} "
              "Best value per column in bold. Direction: "
              + ", ".join(f"{c.header} {'↑' if c.higher_is_better else '↓'}" for c in board.columns))
    page.add(html_table(board_frame(board), board_best(board)))


def _extra_sections(sections: Iterable[ReportSection], page: _Page) -> None:
    for i, extra in enumerate(sections):
        page.section(f"extra-{i}", extra.title)
        if extra.text:
            page.add("".join(f"<p>{escape(p)}</p>" for p in extra.text.split("\n\n")))
        if extra.curves is not None and len(extra.curves):
            page.figure("strength", lambda extra=extra: strength_curves_figure(extra.curves, page.colors), extra.title,
                        extra.curves, name=f"fig_strength_{slug(extra.title.lower())}")
        if extra.table is not None:
            page.add(html_table(extra.table, extra.best))
        if extra.images:
            page.add('<div class="grid">')
            for _, caption, png in extra.images:
                page.png(png, caption)
            page.add("</div>")


def _reference_first(sets: list[str], reference: str) -> list[str]:
    """Column order of a per-set table: the reference set, then the others in the order
    :func:`per_set_table` gives (the summary last)."""
    head = [reference] if reference in sets else []
    return head + [s for s in sets if s != reference]


def _per_set_tables(frame: pd.DataFrame, reference: str, page: _Page) -> None:
    table = per_set_table(frame)
    if table.empty:
        return
    page.section("per-set", "Per degradation set")
    page.note("One table per metric with a value per degradation set (what each metric class declares, "
              "whatever its kind); best value per column in bold.")
    higher = directions(frame)
    for metric, group in table.groupby("metric", sort=False):
        group = group.drop(columns="metric").dropna(axis=1, how="all")
        value_columns = _reference_first([c for c in group.columns if c not in ("model", "layer")], reference)
        group = group[["model", "layer", *value_columns]]
        page.add(f"<h3>{escape(str(metric))} {'↑' if higher[metric] else '↓'}</h3>")
        page.add(html_table(group, best_per_column(group, {c: higher[metric] for c in value_columns})))


def _quality_vs_srga(frame: pd.DataFrame, page: _Page) -> None:
    points = quality_vs_srga_points(frame)
    if points.empty:
        return
    page.section("psnr-vs-srga", "PSNR against SRGA")
    page.note("One point per model and degradation set. The SRGA authors advise comparing SRGA among models "
              "of similar image quality: read a low SRGA together with the PSNR beside it.")
    page.figure("quality_vs_srga", lambda: quality_vs_srga_figure(points, page.colors),
                "PSNR (dB) against SRGA per model and set", points, name="fig_psnr_vs_srga")


def _strength(frame: pd.DataFrame, suite, page: _Page) -> None:
    points = strength_points(frame, suite)
    if points.empty:
        return
    page.section("strength", "Metrics against degradation strength")
    page.note("Sets generated by a {sweep: [start, stop, step]} parameter, at their swept value; "
              "bands are bootstrap intervals where available.")
    page.figure("strength", lambda: strength_curves_figure(points, page.colors),
                "per-set metrics against the swept parameter", points)


def _tsne(pngs: dict[TsneKey, bytes], page: _Page) -> None:
    if not pngs:
        return
    page.section("tsne", "t-SNE of deep features")
    page.add('<div class="grid">')
    for (model, layer, label), png in pngs.items():
        page.png(png, f"{model} / {layer}: by {label}")
    page.add("</div>")


def _training(frame: pd.DataFrame, page: _Page) -> None:
    points = training_points(frame)
    if points.empty:
        return
    page.section("training", "DDR over training")
    layers = ", ".join(sorted(set(points["layer"]) - set(WHOLE_NETWORK_LAYERS))) or OUTPUT_LAYER
    page.note("Summary value of each training snapshot (models labelled name@iteration) on the deepest tapped "
              f"layer ({layers}; the layer sweep shows the others); bands are bootstrap intervals where available.")
    page.figure("training", lambda: training_curves_figure(points, page.colors), "metrics against training iteration",
                points)


def _layer_sweep(frame: pd.DataFrame, page: _Page) -> None:
    points = layer_sweep_points(frame)
    if points.empty:
        return
    page.section("layers", "Layer sweep")
    page.note("Summary value per tapped layer, shallow to deep.")
    order = layer_order(points["layer"])
    page.figure("layers", lambda: layer_sweep_figure(points, order, page.colors), "metrics against layer", points, order)


def _confusions(result, page: _Page) -> None:
    if not result.confusions:
        return
    page.section("confusion", "Degradation identification: confusion matrices")
    page.add('<div class="grid">')
    for confusion in result.confusions:
        caption = (f"{confusion['model']} / {confusion['layer']} / {confusion['metric']}: accuracy "
                   f"{format_value(confusion['accuracy'])}, "
                   f"macro-F1 {format_value(confusion['macro_f1'])}")
        name = f"fig_confusion_{slug(confusion['model'])}_{slug(confusion['layer'])}_{slug(confusion['metric'])}"
        page.figure("confusion", lambda c=confusion: confusion_figure(c["classes"], c["matrix"], c["metric"]), caption,
                    confusion["classes"], confusion["matrix"], confusion["metric"], name=name)
    page.add("</div>")


def _details(frame: pd.DataFrame, result, page: _Page) -> None:
    notes = [r for r in result.rows if not r.status.ok]
    if notes:
        page.section("not-computed", "Not computed, or computed another way")
        page.add("<ul>" + "".join(f"<li>{escape(r.model)} / {escape(r.metric)} / {escape(r.set)}: "
                                  f"{escape(str(r.status))}</li>" for r in notes) + "</ul>")
    page.section("rows", "All values")
    columns = [c for c in ("model", "layer", "metric", "set", "value", "ci_low", "ci_high", "status")
               if c in frame.columns]
    page.add("<details><summary>every metric row with its bootstrap interval</summary>"
             + html_table(frame[columns]) + "</details>")


def embedded_pngs(html_path: Path | None) -> dict[str, bytes]:
    """The keyed PNGs embedded in an earlier report.html, by plot key (none if there is no such file)."""
    try:
        text = Path(html_path).read_text(encoding="utf-8") if html_path is not None else ""
    except (OSError, UnicodeDecodeError):
        return {}
    pngs = {}
    for match in _EMBEDDED_PNG.finditer(text):
        png = base64.b64decode(match.group(1))
        key = stored_plot_key_bytes(png)
        if key:
            pngs[key] = png
    return pngs


_EMBEDDED_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@dataclass(frozen=True)
class HtmlReport:
    """``report.html``'s text and its figures as files (``fig_*.png``/``.svg``) to save beside it."""

    html: str
    files: dict[str, bytes]


def render_html(result, sections: Iterable[ReportSection] = (), tsne: dict[TsneKey, bytes] | None = None,
                previous_html: Path | None = None, colors: ModelColors | None = None) -> str:
    """The whole report of ``result`` (a :class:`~ddr_eval.pipeline.runner.RunResult`) as one HTML page.

    ``tsne`` are the scatters from :func:`tsne_pngs`, when the caller has drawn them already;
    figures drawn from the same inputs as one in ``previous_html`` (an earlier report.html) are
    reused from it, byte for byte. ``colors`` default to :func:`report_colors`.
    """
    sections = tuple(sections)
    return _render(result, sections, tsne, _Page(embedded_pngs(previous_html), colors or report_colors(result, sections)))


def render_report(result, sections: Iterable[ReportSection] = (), tsne: dict[TsneKey, bytes] | None = None,
                  previous_dir: Path | None = None, colors: ModelColors | None = None) -> HtmlReport:
    """:func:`render_html`, plus every figure of the page as PNG and SVG files; figures of the
    report in ``previous_dir`` (its report.html and fig_* files) drawn from the same inputs are
    reused, not drawn."""
    sections = tuple(sections)
    previous_html = Path(previous_dir) / "report.html" if previous_dir is not None else None
    files: dict[str, bytes] = {}
    page = _Page(embedded_pngs(previous_html), colors or report_colors(result, sections), files, previous_dir)
    return HtmlReport(_render(result, sections, tsne, page), files)


def _render(result, sections: Iterable[ReportSection], tsne: dict[TsneKey, bytes] | None, page: _Page) -> str:
    frame = rows_frame(result.rows)
    if not frame.empty:
        _leaderboard(result, page)
    _extra_sections(sections, page)
    if not frame.empty:
        _per_set_tables(frame, result.suite.reference_set, page)
        _quality_vs_srga(frame, page)
        _strength(frame, result.suite, page)
    _tsne(tsne_pngs(result) if tsne is None else tsne, page)
    if not frame.empty:
        _training(frame, page)
        _layer_sweep(frame, page)
    _confusions(result, page)
    if not frame.empty:
        _details(frame, result, page)
    nav = "<nav>" + "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t in page.nav) + "</nav>"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f'<meta name="{IMAGES_META}" content="{page.images}">',
        f"<title>ddr-eval: {escape(result.suite.name)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_SCRIPT}</script>",
        "</head><body>",
        _header(result),
        nav,
        *page.parts,
        "</body></html>",
        "",
    ])
