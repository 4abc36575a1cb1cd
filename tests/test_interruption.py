"""A run killed with SIGKILL part-way resumes from its feature cache and reports the same numbers.

The feature cache writes each cell atomically (temporary file + ``os.replace``) and the report
is written only at the end, so a run killed at an arbitrary moment leaves whole cache entries
or none, and no report. The next run reuses the finished cells and computes the rest; its rows
must equal those of a run that was never interrupted, bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage

from ddr_eval.cli import main
from ddr_eval.cache.store import ENTRY_RECORD, FeatureCache, verify_entry
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model

ARCH_KWARGS = dict(num_feat=16, num_block=2, upscale=2)
MODELS = 2
SETS = {
    "clean": [{"type": "bicubic", "scale": 2}],
    "blur": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}],
    "noise": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 15}],
    "blur_noise": [{"type": "gaussian_blur", "sigma": 1.0}, {"type": "bicubic", "scale": 2},
                   {"type": "gaussian_noise", "sigma": 5}],
}
CELLS = MODELS * len(SETS)  # one pooling, eval split only: one cell per (model, set)
KILL_TIMEOUT = 120.0


def _project(root: Path) -> Path:
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        smooth = np.kron(rng.random((8, 8, 3)), np.ones((8, 8, 1)))
        PILImage.fromarray((smooth * 255).astype(np.uint8)).save(images / f"photo{i}.png")
    models = []
    for seed in range(MODELS):
        torch.manual_seed(seed)
        path = root / f"model{seed}.safetensors"
        save_model(path, build_arch("MSRResNet", **ARCH_KWARGS), "MSRResNet", ARCH_KWARGS)
        models.append({"path": str(path), "as": f"model{seed}"})
    suite = {
        "name": "interrupted",
        "seed": 1,
        "data": {"source": str(images), "patch_size": 32, "patches_per_image": 4, "eval_split": "all"},
        "degradations": [{"name": name, "chain": chain} for name, chain in SETS.items()],
        "models": models,
        "metrics": [{"type": "chi", "label": "degradation", "bootstrap": 0}, {"type": "psnr", "bootstrap": 0}],
        "outputs": {"tsne_plots": False, "html": False},
    }
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _entries(cache: Path) -> list[Path]:
    """Feature-cache entries (metric results under ``metrics/`` and degraded inputs under ``inputs/`` are not cells)."""
    if not cache.exists():
        return []
    return sorted(p for p in cache.rglob("*.npz") if not {"metrics", "inputs"} & set(p.relative_to(cache).parts))


def _start_and_kill_after_first_cells(suite: Path, cache: Path, out: Path) -> int:
    """Start ``ddr-eval run`` in a subprocess and SIGKILL it as soon as a cache entry appears.

    Polling is much faster than one cell, so the kill lands during a later cell's work, which
    is the interesting case: finished cells on disk, others not started or half done.
    """
    env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(cache)}
    process = subprocess.Popen([sys.executable, "-m", "ddr_eval.cli", "run", str(suite), "--out", str(out), "-q"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + KILL_TIMEOUT
    try:
        while not _entries(cache):
            if process.poll() is not None:
                pytest.fail(f"the run ended (exit {process.returncode}) before any cell was cached: "
                            f"{process.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                pytest.fail("no cell was cached in time")
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()


def _run_to_completion(suite: Path, cache: Path, out: Path, monkeypatch, capsys) -> dict:
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(cache))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(suite), "--out", str(out), "-q"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    return json.loads((out / "results.json").read_text())


def _leftovers(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        if root.exists():
            found += [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]
    return found


def test_killed_run_resumes_from_its_cache_and_matches_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    suite = _project(tmp_path)
    cache, killed_out = tmp_path / "cache-interrupted", tmp_path / "report-killed"

    code = _start_and_kill_after_first_cells(suite, cache, killed_out)
    assert code == -signal.SIGKILL
    finished = _entries(cache)
    assert 0 < len(finished) < CELLS, f"expected a part-finished run, found {len(finished)} of {CELLS} cells"
    for entry in finished:  # whole entries only, never a half-written one under its final name
        with np.load(entry, allow_pickle=False) as data:
            verify_entry(data, FeatureCache.kind)  # its record matches its arrays
            assert data.files and all(np.isfinite(data[name]).all() for name in data.files if name != ENTRY_RECORD)
    assert not killed_out.exists(), "a killed run left (part of) a report"

    resumed = _run_to_completion(suite, cache, tmp_path / "report-resumed", monkeypatch, capsys)
    reference = _run_to_completion(suite, tmp_path / "cache-reference", tmp_path / "report-reference",
                                   monkeypatch, capsys)

    assert resumed["provenance"]["cache"]["hits"] == len(finished)
    assert resumed["provenance"]["cache"]["misses"] == CELLS - len(finished)
    assert reference["provenance"]["cache"] == {"enabled": True, "hits": 0, "misses": CELLS, "repeats": 0}
    assert resumed["rows"] == reference["rows"]
    assert len(_entries(cache)) == CELLS
    assert _leftovers(cache, tmp_path / "report-resumed", tmp_path / "report-reference") == []
