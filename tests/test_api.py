"""The Python API: evaluate an in-memory model end to end, bad models refused, lazy exports,
and the CLI and the API giving identical numbers for the same suite."""

from __future__ import annotations

import json
import pydoc
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

import ddr_eval
from ddr_eval.api import ModelInputError, state_dict_sha256
from ddr_eval.cli import main

# 4 embedded photographs, 2 held out (chelsea, coins), 2 patches each, 8x8 LR: seconds per run
TINY = {
    "name": "tiny-api", "seed": 3, "scale": 2,
    "data": {"images": ["astronaut", "camera", "chelsea", "coins"], "patch_size": 16, "patches_per_image": 3},
    "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                     {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]}],
    "models": ["srresnet-gr"],
    "layers": ["deep"],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10}, {"type": "psnr"}],
    "outputs": {"tsne_plots": False, "html": False},
}


class TinySR(nn.Module):
    """Not one of ddr-eval's architectures: taps are plain module names."""

    def __init__(self, channels: int = 3, scale: int = 2):
        super().__init__()
        self.head = nn.Conv2d(channels, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.tail = nn.Conv2d(8, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.tail(self.body(self.head(x))))


def tiny_model(seed: int = 0, **kwargs) -> TinySR:
    torch.manual_seed(seed)
    return TinySR(**kwargs)


def test_an_in_memory_model_is_evaluated_end_to_end(tmp_path):
    net = tiny_model()
    results = ddr_eval.evaluate(TINY, models=net, name="mine", layers=["body.1"], cache_dir=tmp_path / "cache")
    board = results.leaderboard
    assert set(board["model"]) == {"srresnet-gr", "mine"}
    assert set(board[board["model"] == "mine"]["layer"]) == {"body.1"}
    chi = results.rows.query("model == 'mine' and type == 'chi' and set == 'all'")["value"].item()
    assert np.isfinite(chi) and chi > 0
    blur = results.features("mine", "body.1", "blur")
    assert blur.shape == (6, 8)  # 2 held-out images x 3 patches, 8 channels pooled
    out = results.write(tmp_path / "report")
    csv = pd.read_csv(out / "results.csv")
    assert set(csv["model"]) == {"srresnet-gr", "mine"}
    document = json.loads((out / "results.json").read_text())
    spec = document["suite"]["models"][1]
    assert (spec["name"], spec["label_as"]) == ("in-memory:TinySR", "mine")
    # the identity is the weights: the same module again is a cache hit, one changed weight is not
    again = ddr_eval.evaluate(TINY, models=net, replace=True, name="mine", layers=["body.1"],
                              cache_dir=tmp_path / "cache")
    assert again.provenance["results_cache"]["misses"] == 0
    with torch.no_grad():
        net.tail.bias.add_(0.01)
    changed = ddr_eval.evaluate(TINY, models=net, replace=True, name="mine", layers=["body.1"],
                                cache_dir=tmp_path / "cache")
    assert changed.provenance["results_cache"]["misses"] > 0


def test_models_replace_by_name_and_the_state_dict_hash_includes_the_class():
    net = tiny_model()
    results = ddr_eval.evaluate(TINY, models=[net], name="srresnet-gr", layers=["body.1"], use_cache=False)
    assert list(results.leaderboard["model"]) == ["srresnet-gr"]
    assert results.leaderboard["layer"].item() == "body.1"  # the in-memory net stands in for the zoo entry

    class Renamed(TinySR):
        pass

    torch.manual_seed(0)
    assert state_dict_sha256(Renamed()) != state_dict_sha256(tiny_model())
    assert state_dict_sha256(tiny_model()) == state_dict_sha256(tiny_model())


@pytest.mark.parametrize("model, layers, message", [
    (lambda: tiny_model(scale=3), ["body.1"], "not x2"),
    (lambda: tiny_model(), ["body.7"], "nearest names: body"),
    (lambda: tiny_model(channels=1), ["body.1"], "takes 1 input channels"),
])
def test_a_model_that_does_not_fit_is_refused_before_anything_runs(tmp_path, model, layers, message):
    with pytest.raises(ModelInputError, match=message) as caught:
        ddr_eval.evaluate(TINY, models=model(), name="bad", layers=layers, cache_dir=tmp_path / "cache")
    assert "model bad" in str(caught.value)
    assert isinstance(caught.value, ddr_eval.UserError)
    assert not (tmp_path / "cache").exists()  # nothing extracted, nothing written


def test_extract_and_the_metric_functions():
    net = tiny_model()
    lr = np.random.default_rng(0).random((6, 8, 8, 3), dtype=np.float32)
    batch = ddr_eval.extract(net, lr, layers=["body.1"], pooling="gap")
    assert batch.features["body.1"].shape == (6, 8)
    with pytest.raises(ModelInputError, match=r"nearest names: body\.1, body\.0"):
        ddr_eval.extract(net, lr, layers=["body.3"])
    with pytest.raises(ModelInputError, match="takes 3 input channels, lr_patches have 1"):
        ddr_eval.extract(net, lr[..., :1], layers=["body.1"])
    labels = np.repeat(["a", "b"], 3)
    separated = np.concatenate([np.zeros((3, 2)), np.ones((3, 2))]) + np.random.default_rng(1).normal(0, .01, (6, 2))
    assert ddr_eval.chi(separated, labels, bootstrap=0).value > 100
    assert ddr_eval.silhouette(separated, labels, bootstrap=0).value > 0.9
    image = np.random.default_rng(2).random((12, 12, 3))
    assert ddr_eval.psnr(image, image) == float("inf")
    assert ddr_eval.ssim(image, image) == pytest.approx(1.0)


def test_importing_ddr_eval_is_lazy_and_help_lists_the_api():
    code = ("import sys, ddr_eval; heavy = [m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules]; "
            "print(heavy); print(sorted(ddr_eval.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    for name in ("evaluate", "extract", "chi", "silhouette", "srga", "psnr", "ssim", "DDRMonitor", "Results",
                 "UserError"):
        assert name in ddr_eval.__all__ and name in dir(ddr_eval)
    text = pydoc.render_doc(ddr_eval, renderer=pydoc.plaintext)
    assert "evaluate(suite" in text and "class DDRMonitor" in text and "Calinski" in text


def test_cli_and_api_give_identical_results(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    with pytest.raises(SystemExit) as done:
        main(["run", str(suite), "--out", str(tmp_path / "cli"), "--no-cache", "-q"])
    assert done.value.code in (0, None)
    api = ddr_eval.evaluate(suite, use_cache=False).write(tmp_path / "api")
    cli_rows = json.loads((tmp_path / "cli" / "results.json").read_text())["rows"]
    api_rows = json.loads((api / "results.json").read_text())["rows"]
    assert cli_rows == api_rows and len(cli_rows) >= 3
    assert (tmp_path / "cli" / "leaderboard.md").read_text().split("## Leaderboard")[1] == \
        (api / "leaderboard.md").read_text().split("## Leaderboard")[1]


def test_the_notebook_example_runs(tmp_path):
    """docs/notebook_example.py with tiny sizes: it trains, monitors, ranks against the zoo and plots."""
    from pathlib import Path

    script = Path(__file__).parents[1] / "docs" / "notebook_example.py"
    env = {**__import__("os").environ, "DDR_EXAMPLE_TINY": "1", "DDR_EXAMPLE_OUT": str(tmp_path), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mynet" in done.stdout
    for name in ("leaderboard_chi.png", "monitor/ddr_over_training.png", "monitor/ddr_log.csv",
                 "report/results.json"):
        assert (tmp_path / name).exists(), name
