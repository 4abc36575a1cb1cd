"""Foreign key layouts (ddr_eval.models.layouts): the original ESRGAN names and ESRGAN's sequential
``model.N`` names load into ddr-eval's RRDBNet and compute exactly what the BasicSR-named weights do,
through load_model and through the CLI (upscale, run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ddr_eval.core.errors import CheckpointError
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import load_model
from ddr_eval.models.layouts import BASICSR, LAYOUTS, to_basicsr
from cli_exit import exit_code

TINY_RRDB = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2, num_grow_ch=4)
# BasicSR name -> the original ESRGAN repository's (RRDBNet_arch.py)
ORIGINAL_HEADS = {"conv_first": "conv_first", "conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2",
                  "conv_hr": "HRconv", "conv_last": "conv_last"}
# BasicSR name -> ESRGAN's sequential model (transer_RRDB_models.py), for num_block = 2
SEQUENTIAL_HEADS = {"conv_first": "model.0", "conv_body": "model.1.sub.2", "conv_up1": "model.3",
                    "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
BLOCK = re.compile(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)")


def original_name(key: str) -> str:
    block = BLOCK.fullmatch(key)
    if block:
        return f"RRDB_trunk.{block[1]}.RDB{block[2]}.conv{block[3]}.{block[4]}"
    head, param = key.split(".")
    return f"{ORIGINAL_HEADS[head]}.{param}"


def sequential_name(key: str) -> str:
    block = BLOCK.fullmatch(key)
    if block:
        return f"model.1.sub.{block[1]}.RDB{block[2]}.conv{block[3]}.0.{block[4]}"
    head, param = key.split(".")
    return f"{SEQUENTIAL_HEADS[head]}.{param}"


RENAMES = {"basicsr": lambda k: k, "esrgan-original": original_name, "esrgan-sequential": sequential_name}


@pytest.fixture(scope="module")
def tiny_rrdb() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_arch("RRDBNet", **TINY_RRDB).eval()


@pytest.fixture(scope="module")
def layout_files(tiny_rrdb, tmp_path_factory) -> dict[str, Path]:
    """The tiny network's weights saved under each layout's names (pickles, as those repos wrote them)."""
    root = tmp_path_factory.mktemp("layouts")
    files = {}
    for layout, rename in RENAMES.items():
        path = root / f"rrdb-{layout}.pth"
        torch.save({rename(k): v for k, v in tiny_rrdb.state_dict().items()}, path)
        files[layout] = path
    return files


def test_every_layout_is_tested():
    assert {layout.name for layout in LAYOUTS} | {BASICSR} == set(RENAMES)


@pytest.mark.parametrize("layout", list(RENAMES))
def test_load_model_maps_the_layout_and_computes_the_same(layout, layout_files, tiny_rrdb):
    descriptor = load_model(layout_files[layout])
    assert descriptor.layout == layout
    assert (descriptor.arch, descriptor.arch_kwargs, descriptor.scale) == ("RRDBNet", TINY_RRDB, 4)
    assert descriptor.taps["deep"] == "body.1"
    x = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(descriptor.module(x), tiny_rrdb(x))
    assert load_model(layout_files[layout], arch="RRDBNet").layout == layout  # --arch names the arch, not the layout


def test_a_partly_matching_layout_names_the_keys_it_cannot_map(layout_files, tmp_path):
    state = torch.load(layout_files["esrgan-original"], weights_only=True)
    state["extra_conv.weight"] = torch.zeros(1)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"esrgan-original layout of RRDBNet .* no counterpart in it: extra_conv"):
        load_model(path)


def test_a_sequential_file_of_another_upsampler_count_is_refused_by_name(layout_files, tmp_path):
    state = torch.load(layout_files["esrgan-sequential"], weights_only=True)
    state["model.5.weight"] = state.pop("model.6.weight")  # an x2 model: one upsampler, then HR conv
    path = tmp_path / "x2.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"esrgan-sequential layout .* model\.5\.weight"):
        load_model(path)


def test_to_basicsr_leaves_basicsr_keys_alone(tiny_rrdb):
    state, layout = to_basicsr(tiny_rrdb.state_dict())
    assert layout == BASICSR and list(state) == list(tiny_rrdb.state_dict())


def test_upscale_cli_gives_the_same_pixels_for_every_layout(layout_files, tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((6, 7, 3)) * 255).astype(np.uint8)).save(source)
    outputs = []
    for layout, path in layout_files.items():
        target = tmp_path / f"out-{layout}.png"
        assert exit_code(["upscale", "--model", str(path), str(source), str(target)]) == 0
        outputs.append(np.asarray(Image.open(target)))
    assert outputs[0].shape == (24, 28, 3)
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])


def test_run_cli_with_path_models_gives_the_same_rows_for_every_layout(layout_files, tmp_path, monkeypatch):
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))
    suite = {
        "name": "layouts", "seed": 0, "scale": 4,
        "data": {"images": ["astronaut", "camera"], "eval_split": "all", "patch_size": 16, "patches_per_image": 3},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]}],
        "models": [{"path": str(path), "as": layout} for layout, path in layout_files.items()],
        "metrics": [{"type": "psnr"}, {"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 5}],
        "outputs": {"tsne_plots": False, "html": False},
    }
    suite_path = tmp_path / "layouts.yaml"
    suite_path.write_text(yaml.safe_dump(suite))
    assert exit_code(["run", str(suite_path), "--out", str(tmp_path / "report"), "--quiet"]) == 0
    document = json.loads((tmp_path / "report" / "results.json").read_text())
    by_model: dict[str, list] = {}
    for row in document["rows"]:
        by_model.setdefault(row["model"], []).append((row["metric"], row["set"], row["value"], row["ci_low"]))
    assert set(by_model) == set(RENAMES)
    values = list(by_model.values())
    assert len(values[0]) >= 3 and all(v == values[0] for v in values[1:])
