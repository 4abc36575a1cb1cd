"""A user's own architecture (``--arch package.module:Class``), ``--layers`` and the detection line,
through load_model and the CLI (upscale, run, compare)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cli_exit import exit_code
from ddr_eval.core.errors import CheckpointError, UserError
from ddr_eval.models.archs import ARCHS
from ddr_eval.models.checkpoint import load_model, save_model
from ddr_eval.models.taps import body_blocks

NETS = '''
import torch
from torch import nn

CALLED = []


class Block(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.act = nn.PReLU(nf)

    def forward(self, x):
        return x + self.act(self.conv(x))


class MyNet(nn.Module):
    """head -> body (nb blocks) -> pixel-shuffle tail; the scale is an argument."""

    def __init__(self, nf=8, nb=3, upscale=2):
        super().__init__()
        self.head = nn.Conv2d(3, nf, 3, 1, 1)
        self.body = nn.Sequential(*[Block(nf) for _ in range(nb)])
        self.tail = nn.Sequential(nn.Conv2d(nf, 3 * upscale * upscale, 3, 1, 1), nn.PixelShuffle(upscale))

    def forward(self, x):
        return self.tail(self.body(self.head(x)))


class FixedX2(nn.Module):
    """No scale argument: its factor is found by a forward pass."""

    def __init__(self, nf=4):
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(3, nf, 3, 1, 1), nn.Conv2d(nf, nf, 3, 1, 1), nn.Conv2d(nf, nf, 3, 1, 1),
                                     nn.Conv2d(nf, 12, 3, 1, 1)])
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.shuffle(x)


class IgnoresScale(FixedX2):
    """Says it takes a scale, upscales x2 whatever it is told."""

    def __init__(self, nf=4, scale=2):
        super().__init__(nf)


def make_net(**kwargs):
    CALLED.append(kwargs)
    return MyNet(**kwargs)


NOT_A_CLASS = 3
'''

KWARGS = {"nf": 8, "nb": 3, "upscale": 2}
TARGET = "ddr_user_nets.nets:MyNet"


@pytest.fixture
def user_dir(tmp_path, monkeypatch) -> Path:
    """A folder with the user's package, made the working directory (as a user runs the CLI from it)."""
    package = tmp_path / "ddr_user_nets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])  # restored after the test
    for name in [m for m in sys.modules if m.startswith("ddr_user_nets")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _user_net(user_dir: Path, name: str = "MyNet", **kwargs) -> tuple[torch.nn.Module, Path]:
    from ddr_eval.models.user_arch import import_arch

    torch.manual_seed(5)
    net = import_arch(f"ddr_user_nets.nets:{name}")(**kwargs).eval()
    path = user_dir / f"{name.lower()}.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_a_user_class_loads_strictly_with_its_scale_and_deep_tap(user_dir):
    net, path = _user_net(user_dir, **KWARGS)
    descriptor = load_model(path, arch=TARGET, **KWARGS)
    assert (descriptor.arch, descriptor.arch_kwargs, descriptor.scale, descriptor.layout) == (TARGET, KWARGS, 2,
                                                                                              "as saved")
    assert descriptor.taps["deep"] == "body.2" and descriptor.taps["block0"] == "body.0"
    x = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(descriptor.module(x), net(x))
    with pytest.raises(CheckpointError, match=r"does not fit ddr_user_nets.nets:MyNet\(nb=3, nf=4, upscale=2\): "
                                              r"mis-shaped"):
        load_model(path, arch=TARGET, **{**KWARGS, "nf": 4})
    with pytest.raises(CheckpointError, match=r"missing \[body.3"):
        load_model(path, arch=TARGET, **{**KWARGS, "nb": 4})


def test_the_scale_is_measured_when_no_argument_states_it(user_dir):
    _, path = _user_net(user_dir, "FixedX2", nf=4)
    descriptor = load_model(path, arch="ddr_user_nets.nets:FixedX2", nf=4)
    assert descriptor.scale == 2 and descriptor.out_channels == 3
    assert descriptor.taps["deep"] == "layers.2"  # the two nf->nf convs hold the most weights of the ModuleList
    _, lying = _user_net(user_dir, "IgnoresScale", nf=4, scale=3)
    with pytest.raises(CheckpointError, match="with scale 3 in arch_kwargs upscales x2"):
        load_model(lying, arch="ddr_user_nets.nets:IgnoresScale", nf=4, scale=3)


@pytest.mark.parametrize("target, message", [
    ("ddr_user_nets.nets:make_net", "make_net is a function, not an nn.Module subclass"),
    ("ddr_user_nets.nets:NOT_A_CLASS", "NOT_A_CLASS is a int, not an nn.Module subclass"),
    ("ddr_user_nets.nets:Missing", "has no attribute Missing"),
    ("ddr_user_nets.absent:MyNet", "cannot import ddr_user_nets.absent"),
    ("ddr_user_nets.nets:", "expected package.module:ClassName"),
])
def test_anything_but_a_module_class_is_one_line_and_never_called(user_dir, target, message):
    _, path = _user_net(user_dir, **KWARGS)
    with pytest.raises(UserError, match=message):
        load_model(path, arch=target, **KWARGS)
    nets = sys.modules.get("ddr_user_nets.nets")
    assert nets is None or nets.CALLED == []


def test_body_blocks_prefer_the_outer_stack_of_groups():
    """RCAN: residual groups of channel-attention blocks; the groups are the body, not one group's blocks."""
    rcan = ARCHS.get("RCAN")(num_feat=8, num_group=3, num_block=4, squeeze_factor=4, upscale=2)
    blocks = body_blocks(rcan)
    assert blocks == ["body.0", "body.1", "body.2"]
    rrdb = ARCHS.get("RRDBNet")(num_feat=8, num_block=3, num_grow_ch=4)
    assert body_blocks(rrdb)[-1] == rrdb.feature_taps()["deep"]


def test_upscale_cli_with_a_user_class(user_dir, capsys):
    net, path = _user_net(user_dir, **KWARGS)
    source, target = user_dir / "in.png", user_dir / "out.png"
    Image.fromarray((np.random.default_rng(0).random((6, 7, 3)) * 255).astype(np.uint8)).save(source)
    assert exit_code(["upscale", "--model", str(path), "--arch", TARGET, "--arch-kwargs", json.dumps(KWARGS),
                 str(source), str(target)]) == 0
    assert np.asarray(Image.open(target)).shape == (12, 14, 3)
    assert exit_code(["upscale", "--model", str(path), "--arch", TARGET, "--arch-kwargs", "{nf: 8}",
                 str(source), str(target)]) == 2
    assert "--arch-kwargs: not valid JSON" in capsys.readouterr().err
    assert exit_code(["upscale", "--model", str(path), "--arch", TARGET, "--arch-kwargs", "[8]",
                 str(source), str(target)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err


TINY_SR = dict(num_feat=8, num_block=2, upscale=2)


def _suite(user_dir: Path, models: list) -> Path:
    suite = {
        "name": "mine", "seed": 0, "scale": 2,
        "data": {"images": ["astronaut", "camera", "coffee"], "eval_split": "all", "patch_size": 16,
                 "patches_per_image": 3},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]}],
        "models": models,
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 5}, {"type": "psnr"}],
        "outputs": {"tsne_plots": False, "html": False},
    }
    path = user_dir / "mine.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_run_cli_yaml_arch_arch_kwargs_layers_and_the_detection_line(user_dir, capsys):
    _, path = _user_net(user_dir, **KWARGS)
    suite = _suite(user_dir, [{"path": str(path), "as": "mine", "arch": TARGET, "arch_kwargs": KWARGS,
                               "layers": ["deep", "body.0.conv"]}])
    out = user_dir / "report"
    assert exit_code(["run", str(suite), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    line = next(text for text in printed.splitlines() if text.startswith("mine: "))
    params = sum(v.numel() for v in torch.load(path, weights_only=True).values())
    # the YAML file lists arch_kwargs sorted (yaml.safe_dump)
    assert line == (f"mine: {TARGET} x2 (nb=3, nf=8, upscale=2), {params:,} parameters, layout as saved; "
                    "deep -> body.2, body.0.conv")
    document = json.loads((out / "results.json").read_text())
    recorded = document["provenance"]["models"]["mine"]
    assert recorded == {"arch": TARGET, "scale": 2, "arch_kwargs": KWARGS, "params": params, "layout": "as saved",
                        "source": str(path), "from_path": True, "taps": {"deep": "body.2", "body.0.conv": "body.0.conv"}}
    assert {row["layer"] for row in document["rows"] if row["type"] == "chi"} == {"deep", "body.0.conv"}


def test_run_cli_layers_option_and_its_one_line_error(user_dir, capsys):
    _, path = _user_net(user_dir, **KWARGS)
    suite = _suite(user_dir, [{"path": str(path), "as": "mine", "arch": TARGET, "arch_kwargs": KWARGS}])
    out = user_dir / "report"
    assert exit_code(["run", str(suite), "--out", str(out), "--quiet", "--layers", "block1,tail.0"]) == 0
    document = json.loads((out / "results.json").read_text())
    assert {row["layer"] for row in document["rows"] if row["type"] == "chi"} == {"block1", "tail.0"}
    assert document["suite"]["layers"] == ["block1", "tail.0"]
    capsys.readouterr()
    assert exit_code(["run", str(suite), "--out", str(user_dir / "bad"), "--quiet", "--layers", "deep,body.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model mine: unknown layer 'body.9'; taps: deep, block0..block2; module names: body" in err
    assert not (user_dir / "bad" / "results.json").exists()


def test_compare_cli_with_a_user_class_and_its_layers(user_dir, capsys):
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(user_dir / f"zoo{seed}.safetensors")
        save_model(paths[-1], ARCHS.get("MSRResNet")(**TINY_SR), "MSRResNet", TINY_SR)
    suite = _suite(user_dir, [{"path": str(p), "as": f"zoo-{i}"} for i, p in enumerate(paths)])
    _, path = _user_net(user_dir, **KWARGS)
    assert exit_code(["compare", "--model", str(path), "--arch", TARGET, "--arch-kwargs", json.dumps(KWARGS),
                 "--layers", "deep", "--suite", str(suite), "-q"]) == 0
    printed = capsys.readouterr().out
    assert f"mynet: {TARGET} x2 (nf=8, nb=3, upscale=2)" in printed and "deep -> body.2" in printed
    assert "zoo-0: " not in printed  # the suite's own models are not the user's: no line for them
    document = json.loads((user_dir / "reports" / "mine" / "compare-mynet" / "results.json").read_text())
    assert document["provenance"]["models"]["mynet"]["arch"] == TARGET
    assert document["provenance"]["models"]["zoo-0"]["arch"] == "MSRResNet"
    assert exit_code(["compare", "--model", str(path), "--arch", TARGET, "--arch-kwargs", json.dumps(KWARGS),
                 "--layers", "nope", "--suite", str(suite), "-q"]) == 2
    assert "unknown layer 'nope'; taps: deep, block0..block2" in capsys.readouterr().err


def test_suite_schema_checks_the_class_name_and_where_arch_kwargs_apply():
    from ddr_eval.config.schema import ModelSpec

    with pytest.raises(ValueError, match="package.module:ClassName"):
        ModelSpec(path="x.pth", arch="my pkg:Net")
    with pytest.raises(ValueError, match="arch_kwargs.*checkpoint `path`"):
        ModelSpec(name="srresnet-gr", arch_kwargs={"nf": 8})
    assert ModelSpec(path="x.pth", arch="a.b:C", arch_kwargs={"nf": 8}).arch == "a.b:C"
