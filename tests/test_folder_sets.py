"""Folder sets end to end through the CLI: LR-only, paired and ``{folders: ROOT}``, on real
photographs (scikit-image) that the tests write to disk, and every bad-input case of the issue.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image as PILImage

from ddr_eval.cli import main
from ddr_eval.degradations import imresize
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.cells import Cell
from ddr_eval.pipeline.inputs import prepare_inputs
from ddr_eval.config.loader import compile_suite

ARCH_KWARGS = dict(num_feat=8, num_block=1, upscale=2)
PHOTOS = ("astronaut", "coffee", "rocket", "camera")
HR_SIDE = 64
PATCH = 16  # HR patch; LR patches are 8 px


def _photo(name: str) -> np.ndarray:
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels[100:100 + HR_SIDE, 100:100 + HR_SIDE].astype(np.float32) / 255


def _save(pixels: np.ndarray, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path, **options)
    return path


def _write_folders(root: Path) -> dict[str, Path]:
    """phone/ (LR-only JPEGs), pairs/LR + pairs/HR (suffixed names), sets/{scans, captured/LR+HR}."""
    for name in PHOTOS:
        hr = _photo(name)
        lr = imresize(hr, 0.5)
        _save(lr, root / "phone" / f"{name}.jpg", quality=70)
        _save(hr, root / "pairs" / "HR" / f"{name}_HR.png")
        _save(lr, root / "pairs" / "LR" / f"{name}_LR2.png")
        _save(lr, root / "sets" / "scans" / f"{name}.png")
        _save(hr, root / "sets" / "captured" / "HR" / f"{name}.png")
        _save(lr, root / "sets" / "captured" / "LR" / f"{name}.png")
    return {"phone": root / "phone", "pairs": root / "pairs", "sets": root / "sets"}


def _model(root: Path) -> Path:
    torch.manual_seed(0)
    path = root / "tiny.safetensors"
    save_model(path, build_arch("MSRResNet", **ARCH_KWARGS), "MSRResNet", ARCH_KWARGS)
    return path


def _suite_dict(folders: dict[str, Path], model: Path, **changes) -> dict:
    suite = {
        "name": "folders",
        "seed": 0,
        "scale": 2,
        "data": {"patch_size": PATCH, "patches_per_image": 2, "eval_split": "all",
                 "images": ["astronaut", "coffee", "camera"]},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic"}]},
            {"name": "real", "chain": [{"type": "realesrgan"}]},
            {"name": "phone", "lr_folder": str(folders["phone"]), "skip_unreadable": True},
            {"name": "pairs", "lr_folder": str(folders["pairs"] / "LR"), "hr_folder": str(folders["pairs"] / "HR"),
             "lr_suffix": "_LR2", "hr_suffix": "_HR"},
            {"folders": str(folders["sets"])},
        ],
        "reference": "clean",
        "models": [{"path": str(model), "as": "tiny"}],
        "metrics": [{"type": "chi", "label": "degradation", "bootstrap": 0},
                    {"type": "srga", "pca_dim": 300},
                    {"type": "ddr_chi_to_reference"},
                    {"type": "psnr"}, {"type": "ssim"}, {"type": "psnr_drop"}],
        "outputs": {"tsne_plots": False, "html": False},
    }
    suite.update(changes)
    return suite


def _write_suite(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite))
    return path


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code or 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    folders = _write_folders(root)
    (folders["phone"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root, folders, _model(root)


@pytest.fixture(scope="module")
def report(world, tmp_path_factory):
    root, folders, model = world
    suite = _write_suite(root / "suite.yaml", _suite_dict(folders, model))
    out = tmp_path_factory.mktemp("report")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(suite), "--out", str(out), "-q"])
    assert (exit_info.value.code or 0) == 0
    return out


def test_every_form_becomes_a_set_of_the_report(report):
    rows = pd.read_csv(report / "results.csv")
    sets = set(rows["set"])
    assert {"clean", "real", "phone", "pairs", "scans", "captured"} <= sets


def test_ddr_metrics_work_on_lr_only_sets(report):
    rows = pd.read_csv(report / "results.csv").set_index(["type", "set"])
    for name in ("phone", "scans", "pairs", "captured", "real"):
        assert np.isfinite(rows.loc[("srga", name), "value"]), name
        assert np.isfinite(rows.loc[("ddr_chi_to_reference", name), "value"]), name
    assert np.isfinite(rows.loc[("chi", "all"), "value"])


def test_metrics_that_need_hr_are_unavailable_cells_on_lr_only_sets(report):
    rows = pd.read_csv(report / "results.csv").set_index(["type", "set"])
    for metric in ("psnr", "ssim", "psnr_drop"):
        for name in ("phone", "scans"):
            assert pd.isna(rows.loc[(metric, name), "value"]), (metric, name)
            assert rows.loc[(metric, name), "status"] == f"unavailable: no HR for set {name}"
        for name in ("pairs", "captured", "real"):
            assert np.isfinite(rows.loc[(metric, name), "value"]), (metric, name)
    leaderboard = (report / "leaderboard.md").read_text()
    assert "psnr / phone: unavailable: no HR for set phone" in leaderboard


def test_skipped_unreadable_files_are_listed_in_the_report(report):
    provenance = json.loads((report / "results.json").read_text())["provenance"]
    assert [Path(f).name for f in provenance["skipped_unreadable"]["phone"]] == ["broken.png"]
    assert "broken.png" in (report / "leaderboard.md").read_text()


def test_paired_patches_are_aligned_and_lr_only_patches_have_no_hr(world):
    root, folders, model = world
    loaded = compile_suite(_suite_dict(folders, model), "suite.yaml")
    inputs = prepare_inputs(loaded, need_train=False)
    pairs, phone = inputs.eval_sets["pairs"], inputs.eval_sets["phone"]
    assert phone.patches.hr is None and phone.lr.shape == (8, PATCH // 2, PATCH // 2, 3)
    assert pairs.patches.hr.shape == (8, PATCH, PATCH, 3) and pairs.lr.shape == (8, PATCH // 2, PATCH // 2, 3)
    # the files' LR is the bicubic HR, so each LR patch is (away from its border) the bicubic of its HR patch
    for lr, hr in zip(pairs.lr, pairs.patches.hr):
        inner = (imresize(hr, 0.5) - lr)[2:-2, 2:-2]
        assert np.abs(inner).max() < 3 / 255
    assert pairs.patches.image_names == tuple(f"{n}_LR2.png" for n in sorted(PHOTOS))


def test_inputs_are_bit_identical_and_cache_keys_follow_the_files_bytes(world, tmp_path):
    root, folders, model = world
    loaded = compile_suite(_suite_dict(folders, model), "suite.yaml")
    first, second = prepare_inputs(loaded, False), prepare_inputs(loaded, False)
    for name, dataset in first.eval_sets.items():
        np.testing.assert_array_equal(dataset.lr, second.eval_sets[name].lr)
    # a copy of the phone folder with one file re-encoded: same names, other bytes, another key
    import shutil

    copy = tmp_path / "phone"
    shutil.copytree(folders["phone"], copy)
    _save(imresize(_photo("rocket"), 0.5), copy / "rocket.jpg", quality=71)
    changed = compile_suite(_suite_dict({**folders, "phone": copy}, model), "suite.yaml")
    other = prepare_inputs(changed, False).eval_sets["phone"]
    assert other.source_digest != first.eval_sets["phone"].source_digest
    from ddr_eval.pipeline.models import build_sources

    source = build_sources(loaded.suite.models, loaded.suite.layers, 2, 0)[0]
    assert Cell(source, other, "gap", False).key() != Cell(source, first.eval_sets["phone"], "gap", False).key()


# ------------------------------------------------------------------------------ bad input


def _assert_one_line_exit_2(code: int, stderr: str, *culprits: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])


def _set(suite: dict, index: int, **entry) -> dict:
    suite["degradations"][index] = entry
    return suite


def _bad_cases(root: Path, folders: dict[str, Path], model: Path):
    empty = root / "empty"
    empty.mkdir(exist_ok=True)
    small = root / "small"
    _save(np.zeros((6, 20, 3)), small / "tiny.png")
    _save(np.zeros((20, 20, 3)), small / "fine.png")
    missized = root / "missized"
    _save(np.zeros((16, 16, 3)), missized / "LR" / "a.png")
    _save(np.zeros((30, 32, 3)), missized / "HR" / "a.png")
    unmatched = root / "unmatched"
    _save(np.zeros((16, 16, 3)), unmatched / "LR" / "b.png")
    _save(np.zeros((32, 32, 3)), unmatched / "HR" / "c.png")
    strict_phone = dict(name="phone", lr_folder=str(folders["phone"]))
    base = lambda **changes: _suite_dict(folders, model, **changes)  # noqa: E731
    return {
        "missing folder": (_set(base(), 2, name="phone", lr_folder=str(root / "nope")), ["degradations[2].lr_folder", "nope"]),
        "empty folder": (_set(base(), 2, name="phone", lr_folder=str(empty)), ["degradations[2].lr_folder", "empty"]),
        "unreadable file": (_set(base(), 2, **strict_phone), ["broken.png"]),
        "lr smaller than a patch": (_set(base(), 2, name="small", lr_folder=str(small)), ["tiny.png", "8"]),
        "mis-sized pair": (_set(base(), 3, name="pairs", lr_folder=str(missized / "LR"), hr_folder=str(missized / "HR")),
                           ["a.png", "16x16", "32x30"]),
        "unmatched pair": (_set(base(), 3, name="pairs", lr_folder=str(unmatched / "LR"),
                                hr_folder=str(unmatched / "HR")), ["b.png", "degradations[3].hr_folder"]),
        "typo'd folders root": (_set(base(), 4, folders=str(root / "setz")), ["degradations[4].folders", "setz"]),
        "lr-only reference of psnr": (base(reference="phone"), ["reference", "phone", "psnr"]),
        "folder sets without a scale": (
            {**base(), "scale": None, "reference": None, "metrics": [{"type": "chi"}],
             "degradations": [strict_phone | {"skip_unreadable": True},
                              {"name": "scans", "lr_folder": str(folders["sets"] / "scans")}]},
            ["scale", "phone, scans"]),
    }


@pytest.mark.parametrize("case", ["missing folder", "empty folder", "unreadable file", "lr smaller than a patch",
                                  "mis-sized pair", "unmatched pair", "typo'd folders root",
                                  "lr-only reference of psnr", "folder sets without a scale"])
def test_bad_input_is_one_line_exit_2_and_no_report(world, tmp_path, monkeypatch, capsys, case):
    root, folders, model = world
    monkeypatch.chdir(tmp_path)
    suite, culprits = _bad_cases(tmp_path, folders, model)[case]
    suite = {key: value for key, value in suite.items() if value is not None}
    path = _write_suite(tmp_path / "suite.yaml", suite)
    code, stderr = _cli(["run", str(path), "--out", str(tmp_path / "report"), "-q"], capsys)
    _assert_one_line_exit_2(code, stderr, *culprits)
    assert not (tmp_path / "report").exists() and not (tmp_path / "reports").exists()
