"""`ddr-eval upscale IN OUT`: OUT's extension picks the image format; an unknown one is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from cli_exit import exit_code

ARCH_KWARGS = {"num_feat": 4, "num_block": 1, "upscale": 2}


@pytest.fixture
def model_and_image(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "tiny.safetensors"
    save_model(model, build_arch("MSRResNet", **ARCH_KWARGS), "MSRResNet", ARCH_KWARGS)
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(image)
    return model, image


@pytest.mark.parametrize("name, expected", [("out.png", "PNG"), ("out.jpg", "JPEG"), ("out.JPEG", "JPEG"),
                                            ("out.webp", "WEBP"), ("out.tif", "TIFF"), ("out.tiff", "TIFF")])
def test_the_extension_picks_the_format(model_and_image, tmp_path, name, expected):
    model, image = model_and_image
    assert exit_code(["upscale", str(image), str(tmp_path / name), "--model", str(model)]) == 0
    with Image.open(tmp_path / name) as written:
        assert written.format == expected
        assert written.size == (20, 24)


@pytest.mark.parametrize("name", ["out.gif", "out", "out.exr"])
def test_an_unknown_extension_is_refused_in_one_line(model_and_image, tmp_path, capsys, name):
    model, image = model_and_image
    assert exit_code(["upscale", str(image), str(tmp_path / name), "--model", str(model)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("ddr-eval: error: output image") and "unknown extension" in err[0]
    assert not (tmp_path / name).exists()
