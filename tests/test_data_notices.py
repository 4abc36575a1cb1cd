"""What a run scores on is said out loud: a small folder is evaluated whole, and the terminal names
the photographs, a --limit and each fallback in one line each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ddr_eval.pipeline.inputs import SMALL_FOLDER, effective_eval_split
from ddr_eval.results.console import data_notices
from ddr_eval.config.loader import compile_suite

ROOT = Path(__file__).resolve().parents[1]


def _folder(root: Path, count: int) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"photo{i}.png")
    return root


def _suite(source: Path, **data) -> dict:
    raw = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    raw["data"] = {**raw["data"], "source": str(source), **data}
    raw.pop("findings", None)
    return raw


def test_a_small_folder_is_scored_whole_unless_the_suite_or_a_probe_asks_for_a_split(tmp_path):
    small = _folder(tmp_path / "small", SMALL_FOLDER - 1)
    big = _folder(tmp_path / "big", SMALL_FOLDER)
    assert effective_eval_split(compile_suite(_suite(small)), need_train=False) == "all"
    assert effective_eval_split(compile_suite(_suite(big)), need_train=False) == "test"
    assert effective_eval_split(compile_suite(_suite(small)), need_train=True) == "test"
    assert effective_eval_split(compile_suite(_suite(small, eval_split="test")), need_train=False) == "test"
    assert effective_eval_split(compile_suite(_suite(small, test_images=["photo0"])), need_train=False) == "test"


def test_notices_name_the_photographs_the_small_folder_rule_the_limit_and_each_fallback():
    provenance = {"data": {"eval_split": "all", "suite_eval_split": "test",
                           "splits": {"all": {"images": {"clean": ["b", "a"], "blur": ["a", "b"]},
                                              "patches": {"clean": 12, "blur": 12}}}},
                  "limit_patches": 12}
    clip = "fallback: reference: PCA dim clipped from 300 to 12"
    rows = [{"metric": "srga[pca300]", "status": clip}, {"metric": "srga[pca300]", "status": clip},
            {"metric": "psnr", "status": "ok"}]
    notices = data_notices(provenance, rows)
    assert notices[0] == "data: scored on the all split: 2 photographs (a, b), 12 patches per set"
    assert "fewer than 8 photographs" in notices[1]
    assert notices[2].startswith("data: --limit 12")
    assert notices[3] == "fallback: srga[pca300]: reference: PCA dim clipped from 300 to 12 (2 rows)"
    assert len(notices) == 4
