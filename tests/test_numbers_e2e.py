"""Degenerate numbers through the whole pipeline: never a NaN or an infinity in a report.

Metrics raise ``DegenerateInputError`` on constant or non-finite features and on a single
class (unit-tested with the metrics). Here the same situations are produced the way users
meet them, from a suite, and the report files are checked: every value in results.csv,
results.json and leaderboard.md is a finite number or empty with an ``unavailable: ...`` note,
and every model still appears in the leaderboard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image as PILImage

from ddr_eval.cli import main
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model

ARCH_KWARGS = dict(num_feat=8, num_block=1, upscale=2)
SETS = {
    "clean": [{"type": "bicubic", "scale": 2}],
    "blur": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}],
    "noise": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 15}],
}
NUMBER_COLUMNS = ("value", "ci_low", "ci_high")


# -- models and data ---------------------------------------------------------------------------


def _save(path: Path, module: torch.nn.Module) -> Path:
    save_model(path, module, "MSRResNet", ARCH_KWARGS)
    return path


def _trained_like(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return _save(tmp_path / "ordinary.safetensors", build_arch("MSRResNet", **ARCH_KWARGS))


def _all_zero(tmp_path: Path) -> Path:
    """Zero weights: every tapped feature is 0 (constant) and, through the global residual, the
    output is exactly the bilinear upsampling of the input."""
    module = build_arch("MSRResNet", **ARCH_KWARGS)
    for parameter in module.parameters():
        torch.nn.init.zeros_(parameter)
    return _save(tmp_path / "zero.safetensors", module)


def _overflowing(tmp_path: Path) -> Path:
    """Finite weights whose activations overflow float32: features and outputs become Inf/NaN."""
    torch.manual_seed(0)
    module = build_arch("MSRResNet", **ARCH_KWARGS)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(1e20)
    return _save(tmp_path / "overflow.safetensors", module)


def _photos(folder: Path, count: int = 4, size: int = 48) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        smooth = np.kron(rng.random((size // 8, size // 8, 3)), np.ones((8, 8, 1)))
        PILImage.fromarray((smooth * 255).astype(np.uint8)).save(folder / f"photo{i}.png")
    return folder


def _flat_greys(folder: Path, count: int = 4, size: int = 48) -> Path:
    """Uniform images: every patch of one image is identical, and bicubic/blur keep them flat."""
    folder.mkdir()
    for i in range(count):
        PILImage.fromarray(np.full((size, size, 3), 60 + 40 * i, dtype=np.uint8)).save(folder / f"grey{i}.png")
    return folder


def _suite(tmp_path: Path, models: dict[str, Path], images: Path, sets: tuple[str, ...] = ("clean", "blur", "noise"),
           metrics: list | None = None) -> Path:
    suite = {
        "name": "numbers",
        "seed": 3,
        "data": {"source": str(images), "patch_size": 16, "patches_per_image": 4, "eval_split": "all"},
        "degradations": [{"name": name, "chain": SETS[name]} for name in sets],
        "reference": sets[0],
        "models": [{"path": str(path), "as": label} for label, path in models.items()],
        "metrics": metrics or [
            {"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 5},
            {"type": "silhouette", "label": "degradation", "projection": "raw", "bootstrap": 0},
            {"type": "srga", "pca_dim": 4, "bootstrap": 0},
            {"type": "psnr", "bootstrap": 5},
            {"type": "psnr_drop"},
        ],
        "outputs": {"tsne_plots": False, "html": False},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(cache))
    return cache


def _run(suite: Path, out: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(suite), "--out", str(out), "-q"])
    assert exit_info.value.code == 0, capsys.readouterr().err


# -- what a report must never contain ------------------------------------------------------------


def _reject_constant(name: str):
    raise AssertionError(f"results.json contains {name}, which is not JSON")


def _report(out: Path) -> tuple[list[dict], pd.DataFrame, str]:
    """Rows from results.json (parsed strictly), results.csv and the leaderboard, all checked finite."""
    document = json.loads((out / "results.json").read_text(), parse_constant=_reject_constant)
    rows = document["rows"]
    csv = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    leaderboard = (out / "leaderboard.md").read_text()
    for row in rows:
        for column in NUMBER_COLUMNS:
            value = row[column]
            assert value is None or math.isfinite(value), row
        if row["value"] is None:
            assert row["status"].startswith("unavailable: "), row
    for column in NUMBER_COLUMNS:
        numbers = pd.to_numeric(csv[column], errors="raise")  # a "nan"/"inf" text would parse as non-finite
        assert np.isfinite(numbers.dropna()).all(), csv[column]
    words = {word.strip("|*`").lower() for word in leaderboard.split()}
    assert not words & {"nan", "inf", "-inf", "infinity"}, leaderboard
    return rows, csv, leaderboard


def _leaderboard_models(leaderboard: str) -> set[str]:
    section = leaderboard.split("## Leaderboard", 1)[1].split("##", 1)[0]
    cells = [line.split("|") for line in section.splitlines() if line.startswith("|")]
    return {row[1].strip() for row in cells[2:]}  # skip header and separator


def _rows(rows: list[dict], model: str, metric_type: str) -> list[dict]:
    return [r for r in rows if r["model"] == model and r["type"] == metric_type]


# -- cases ---------------------------------------------------------------------------------------


def test_constant_features_are_noted_and_the_model_stays_on_the_leaderboard(tmp_path, cache_dir, capsys):
    models = {"ordinary": _trained_like(tmp_path), "zero": _all_zero(tmp_path)}
    out = tmp_path / "report"
    _run(_suite(tmp_path, models, _photos(tmp_path / "images")), out, capsys)
    rows, _, leaderboard = _report(out)

    for metric_type in ("chi", "silhouette", "srga"):
        zero_rows = _rows(rows, "zero", metric_type)
        assert zero_rows and all(r["value"] is None for r in zero_rows), zero_rows
        assert all("constant" in r["status"] or "no degradation set" in r["status"] for r in zero_rows), zero_rows
        assert any(r["value"] is not None for r in _rows(rows, "ordinary", metric_type))
    # the outputs of the zero model are a plain upsampling: image quality is still measurable
    assert all(r["value"] is not None for r in _rows(rows, "zero", "psnr"))
    assert _leaderboard_models(leaderboard) == {"ordinary", "zero"}
    assert "zero / chi[degradation,raw] / all: unavailable: " in leaderboard


def test_a_single_degradation_set_gives_notes_not_numbers(tmp_path, cache_dir, capsys):
    models = {"ordinary": _trained_like(tmp_path)}
    out = tmp_path / "report"
    _run(_suite(tmp_path, models, _photos(tmp_path / "images"), sets=("clean",)), out, capsys)
    rows, _, leaderboard = _report(out)

    for metric_type in ("chi", "silhouette"):
        (row,) = _rows(rows, "ordinary", metric_type)
        assert row["value"] is None and "at least 2 distinct labels" in row["status"]
    for metric_type in ("srga", "psnr", "psnr_drop"):
        mean = [r for r in _rows(rows, "ordinary", metric_type) if r["set"] == "mean"]
        assert len(mean) == 1 and mean[0]["value"] is None
        assert "no degradation set besides the reference" in mean[0]["status"]
    assert _leaderboard_models(leaderboard) == {"ordinary"}


def test_fewer_samples_or_features_than_pca_components_is_a_noted_fallback(tmp_path, cache_dir, capsys):
    """SRGA asks for 300 PCA components from 16 patches per set (4 images x 4): the documented
    fallback (clip to what the data has) is taken, and the row says so instead of silently using fewer."""
    out = tmp_path / "report"
    metrics = [{"type": "srga", "pca_dim": 300, "bootstrap": 0}]
    _run(_suite(tmp_path, {"ordinary": _trained_like(tmp_path)}, _photos(tmp_path / "images"), sets=("clean", "blur"),
                metrics=metrics), out, capsys)
    rows, csv, _ = _report(out)
    (blur,) = [r for r in rows if r["set"] == "blur"]
    assert blur["value"] is not None
    assert "PCA dim clipped from 300 to 16 = min(n_samples=16" in blur["status"]
    assert csv.loc[csv["set"] == "blur", "status"].str.contains("PCA dim clipped").all()


def test_infinite_psnr_of_perfect_reconstructions_is_noted(tmp_path, cache_dir, capsys):
    """Flat images through the zero model are reproduced exactly: PSNR is +inf (as in BasicSR),
    which must reach the report as a note, and the PSNR drop computed from it too."""
    models = {"zero": _all_zero(tmp_path)}
    out = tmp_path / "report"
    _run(_suite(tmp_path, models, _flat_greys(tmp_path / "images"), sets=("clean", "blur")), out, capsys)
    rows, _, leaderboard = _report(out)

    psnr_rows = _rows(rows, "zero", "psnr")
    assert psnr_rows and all(r["value"] is None for r in psnr_rows)
    assert all("not finite (inf)" in r["status"] for r in psnr_rows if r["set"] != "mean")
    drops = _rows(rows, "zero", "psnr_drop")
    assert drops and all(r["value"] is None and r["status"].startswith("unavailable: ") for r in drops)
    assert _leaderboard_models(leaderboard) == {"zero"}


def test_overflowing_model_is_noted_on_every_run_even_with_the_cache(tmp_path, cache_dir, capsys):
    """Non-finite SR outputs are not cached (the cache stores uint8 outputs, where NaN would become
    an ordinary pixel), so the second run reports the same notes as the first."""
    models = {"ordinary": _trained_like(tmp_path), "overflow": _overflowing(tmp_path)}
    suite = _suite(tmp_path, models, _photos(tmp_path / "images"), sets=("clean", "noise"))
    reports = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        _run(suite, out, capsys)
        rows, _, leaderboard = _report(out)
        assert _leaderboard_models(leaderboard) == {"ordinary", "overflow"}
        overflow = [r for r in rows if r["model"] == "overflow"]
        assert overflow and all(r["value"] is None for r in overflow), overflow
        assert any("NaN/Inf" in r["status"] for r in _rows(rows, "overflow", "chi"))
        assert any("NaN/Inf" in r["status"] for r in _rows(rows, "overflow", "psnr"))
        reports.append(rows)
    assert json.loads(json.dumps(reports[0])) == json.loads(json.dumps(reports[1]))
