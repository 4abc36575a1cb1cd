"""The spandrel fallback: a broken optional extra is one line (exit 2), and a network spandrel builds
gets taps by the body-block rule. spandrel itself is not installed here (its torchvision does not load
with the pinned CPU torch), so these tests put a stand-in ``spandrel`` package on ``sys.path``: one
that fails to import the way the real one does, and one whose ModelLoader hands back an ESRGAN-like
network, to check what ddr-eval makes of spandrel's answer."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ddr_eval.cli import main
from ddr_eval.core.errors import CheckpointError
from ddr_eval.models.checkpoint import load_model

BROKEN = {
    "runtime": "raise RuntimeError('operator torchvision::nms does not exist')",
    "torchvision": "import torchvision_that_is_not_there as torchvision",
    "oserror": "raise OSError('libc10_cuda.so: cannot open shared object file')",
}

WORKING = '''
from types import SimpleNamespace
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, 1, 1)

    def forward(self, x):
        return x + self.conv(x)


class ModelLoader:
    def load_from_state_dict(self, state_dict):
        body = nn.Sequential(Block(), Block(), Block(), nn.Conv2d(4, 4, 3, 1, 1))
        model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), body, nn.Conv2d(4, 12, 3, 1, 1), nn.PixelShuffle(2))
        return SimpleNamespace(model=model, architecture=SimpleNamespace(name="Stand-in"), scale=2,
                               input_channels=3, output_channels=3)
'''


@pytest.fixture
def fake_spandrel(tmp_path, monkeypatch):
    def install(source: str) -> None:
        package = tmp_path / "fake" / "spandrel"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path / "fake"))
        monkeypatch.delitem(sys.modules, "spandrel", raising=False)

    yield install
    sys.modules.pop("spandrel", None)


def _odd_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "odd.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    return path


@pytest.mark.parametrize("how", list(BROKEN))
def test_a_broken_spandrel_is_one_line_naming_the_extra(how, fake_spandrel, tmp_path, capsys):
    fake_spandrel(BROKEN[how])
    path = _odd_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"unknown architecture.*the optional extra \[spandrel\] is installed but "
                                              r"does not load \((RuntimeError|ModuleNotFoundError|OSError): "):
        load_model(path)
    with pytest.raises(SystemExit) as info:
        main(["upscale", "--model", str(path), str(tmp_path / "in.png"), str(tmp_path / "out.png")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "[spandrel]" in err and "Traceback" not in err


def test_a_spandrel_network_gets_its_deepest_body_block_as_deep(fake_spandrel, tmp_path):
    fake_spandrel(WORKING)
    descriptor = load_model(_odd_checkpoint(tmp_path))
    assert (descriptor.arch, descriptor.scale, descriptor.layout) == ("spandrel:Stand-in", 2, "spandrel")
    assert descriptor.taps == {"block0": "1.0", "block1": "1.1", "block2": "1.2", "deep": "1.2"}
