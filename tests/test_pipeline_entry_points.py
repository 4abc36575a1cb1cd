"""The pipeline's stage entry points (``ddr_eval.pipeline.build``) compose to what a run computes:
called one by one they give ``run_suite``'s rows and features; DDRMonitor, which calls them on
its own inputs, gives the CLI's numbers; ``identify`` extracts through them with the device and
batch size it is asked for (or its recipe's runtime), not fixed ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from ddr_eval.core.errors import UserError
from ddr_eval.pipeline.build import (
    build_inputs,
    build_sources,
    extract_cells,
    plan_cells,
    reduce_features,
)
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import compile_suite

SUITE = {
    "name": "entry-points", "seed": 5, "scale": 2,
    "data": {"images": ["astronaut", "camera", "chelsea", "coins"], "patch_size": 16, "patches_per_image": 3},
    "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                     {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]},
                     {"name": "noise", "chain": [{"type": "bicubic"}, {"type": "gaussian_noise", "sigma": 10}]}],
    "models": ["srresnet-gr", {"baseline": "image_statistics"}],
    "layers": ["deep"],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10},
                {"type": "srga", "pca_dim": 4},  # reads flattened maps: a second pooling
                {"type": "psnr"}, {"type": "psnr_drop"}],  # psnr_drop reads psnr's rows
    "outputs": {"tsne_plots": False, "html": False},
}
KEY = ["model", "layer", "metric", "set"]


def _values(rows) -> pd.Series:
    frame = pd.DataFrame([row if isinstance(row, dict) else row.to_dict() for row in rows])
    return frame.set_index(KEY)["value"].sort_index()


def test_the_stages_called_one_by_one_give_run_suites_rows_and_features():
    loaded = compile_suite(SUITE, "entry-points.yaml")
    expected = run_suite(loaded, use_cache=False, progress=False)

    sources = build_sources(loaded)
    inputs = build_inputs(loaded)
    cells = plan_cells(sources, inputs, loaded.metrics, loaded.suite.pooling, reference=loaded.suite.reference_set)
    features = extract_cells(cells, batch_size=loaded.suite.runtime.batch_size, device="cpu")
    reduction = reduce_features(loaded, sources, inputs, features)

    assert features.keys() == expected.batches.keys()
    assert {key.pooling for key in features} == {"gap", "flatten"}
    for key, batch in features.items():
        for module, array in batch.features.items():
            np.testing.assert_array_equal(array, expected.batches[key].features[module])
    got, want = _values(reduction.rows), _values(expected.rows)
    assert len(got) == len(want) >= 12 and got.notna().sum() >= 8
    pd.testing.assert_series_equal(got, want, rtol=1e-12, atol=0)


def _checkpoint_suite(tmp_path):
    """A suite whose model is a small BasicSR-layout checkpoint, and the module it holds."""
    from ddr_eval.models.archs import build_arch
    from ddr_eval.models.checkpoint import save_model

    kwargs = dict(num_feat=8, num_block=2, upscale=2)
    torch.manual_seed(2)
    net = build_arch("MSRResNet", **kwargs)
    save_model(tmp_path / "net.safetensors", net, "MSRResNet", kwargs)
    raw = {**SUITE, "models": [{"path": str(tmp_path / "net.safetensors"), "as": "mine"}],
           "metrics": [SUITE["metrics"][0], {"type": "psnr"}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, net


def test_the_monitor_gives_the_numbers_of_ddr_eval_run(tmp_path):
    from ddr_eval.cli import main
    from ddr_eval.workflows.monitor import DDRMonitor

    suite, net = _checkpoint_suite(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["run", str(suite), "--out", str(tmp_path / "report"), "--no-cache", "--quiet"])
    assert (info.value.code or 0) == 0
    cli = pd.read_csv(tmp_path / "report" / "results.csv").set_index(KEY)["value"].sort_index()

    rows = DDRMonitor(str(suite), every=1, name="mine").measure(net, 0)
    monitored = _values(rows)
    assert len(monitored) == len(cli) >= 4 and monitored.notna().all()
    pd.testing.assert_series_equal(monitored, cli, rtol=1e-9, atol=0, check_names=False)


class ExtractionSpy:
    """Records the batch size and device of each forward pass a feature source makes."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[int, torch.device]] = []
        original = FeatureSource.extract_poolings
        spy = self

        def recording(source, lr, poolings, batch_size, device, amp_dtype, outputs):
            spy.calls.append((batch_size, torch.device(device)))
            return original(source, lr, poolings, batch_size, device, amp_dtype, outputs)

        monkeypatch.setattr(FeatureSource, "extract_poolings", recording)


@pytest.fixture
def lr_image(tmp_path):
    path = tmp_path / "lr.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_identify_extracts_with_the_batch_size_and_device_it_is_given(monkeypatch, lr_image):
    from ddr_eval.workflows.identify import Identifier

    spy = ExtractionSpy(monkeypatch)
    found = Identifier("ddr-probe", batch_size=3, device="cpu").identify(lr_image)
    assert spy.calls == [(3, torch.device("cpu"))]
    assert abs(sum(found.probabilities.values()) - 1) < 1e-3
    if not torch.cuda.is_available():  # a device that is asked for is used, or refused: never replaced by the CPU
        with pytest.raises(UserError, match="CUDA is not available"):
            Identifier("ddr-probe", device="cuda")


def test_identify_takes_the_recipes_runtime_and_the_command_lines_options(tmp_path, monkeypatch, lr_image, capsys):
    from ddr_eval.cli import main
    from ddr_eval.workflows.identify import probe_dir

    mine = tmp_path / "probes"
    mine.mkdir()
    for suffix in (".npz", ".json"):
        shutil.copy(probe_dir() / f"ddr-probe{suffix}", mine / f"ddr-probe{suffix}")
    recipe = yaml.safe_load((probe_dir() / "ddr-probe.yaml").read_text())
    recipe["runtime"] = {**recipe.get("runtime", {}), "batch_size": 5, "device": "cpu"}
    (mine / "ddr-probe.yaml").write_text(yaml.safe_dump(recipe))
    assert json.loads((mine / "ddr-probe.json").read_text())["recipe"] == "ddr-probe.yaml"

    spy = ExtractionSpy(monkeypatch)
    from ddr_eval.workflows.identify import Identifier

    Identifier("ddr-probe", root=tmp_path).identify(lr_image)
    assert spy.calls == [(5, torch.device("cpu"))]  # the recipe's runtime, not a fixed 64

    with pytest.raises(SystemExit) as info:
        main(["identify", "--probe", str(mine / "ddr-probe.npz"), "--batch-size", "2", "--device", "cpu",
              str(lr_image)])
    assert (info.value.code or 0) == 0
    assert spy.calls[-1] == (2, torch.device("cpu"))
    assert str(lr_image) in capsys.readouterr().out
