"""Architectures: BasicSR key names, BasicSR forward arithmetic, shapes, taps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddr_eval.core.errors import UserError
from ddr_eval.models.archs import ARCHS, EDSR, RCAN, SRCNN, ContentClassifier, MSRResNet, RRDBNet, build_arch
from ddr_eval.models.archs import SRVGGNetCompact, VGGStyleDiscriminator
from ddr_eval.models.archs.arch_util import pixel_unshuffle


def conv(name: str, bias: bool = True) -> list[str]:
    return [f"{name}.weight", f"{name}.bias"] if bias else [f"{name}.weight"]


def bn(name: str) -> list[str]:
    return [f"{name}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def keys(module: torch.nn.Module) -> list[str]:
    return list(module.state_dict().keys())


# -- state-dict keys, written out from BasicSR's __init__ for small configurations -----------


def test_msrresnet_keys_x4_and_x2():
    body = conv("body.0.conv1") + conv("body.0.conv2") + conv("body.1.conv1") + conv("body.1.conv2")
    x4 = conv("conv_first") + body + conv("upconv1") + conv("upconv2") + conv("conv_hr") + conv("conv_last")
    assert keys(MSRResNet(num_feat=8, num_block=2, upscale=4)) == x4
    x2 = conv("conv_first") + body + conv("upconv1") + conv("conv_hr") + conv("conv_last")
    model = MSRResNet(num_feat=8, num_block=2, upscale=2)
    assert keys(model) == x2
    assert model.state_dict()["upconv1.weight"].shape == (8 * 4, 8, 3, 3)
    assert MSRResNet(num_feat=8, num_block=2, upscale=3).state_dict()["upconv1.weight"].shape == (8 * 9, 8, 3, 3)


def test_srresnet_alias_is_msrresnet():
    assert ARCHS.get("SRResNet") is MSRResNet


def test_edsr_keys_and_mean_not_in_state_dict():
    expected = (conv("conv_first") + conv("body.0.conv1") + conv("body.0.conv2") + conv("body.1.conv1")
                + conv("body.1.conv2") + conv("conv_after_body") + conv("upsample.0") + conv("upsample.2")
                + conv("conv_last"))
    model = EDSR(3, 3, num_feat=8, num_block=2, upscale=4)
    assert keys(model) == expected
    assert model.mean.shape == (1, 3, 1, 1)
    x3 = EDSR(3, 3, num_feat=8, num_block=1, upscale=3).state_dict()
    assert x3["upsample.0.weight"].shape == (8 * 9, 8, 3, 3) and "upsample.2.weight" not in x3


def test_rrdbnet_keys_and_unshuffled_input_channels():
    rdb = lambda p: sum((conv(f"{p}.conv{i}") for i in range(1, 6)), [])  # noqa: E731
    expected = (conv("conv_first") + rdb("body.0.rdb1") + rdb("body.0.rdb2") + rdb("body.0.rdb3")
                + conv("conv_body") + conv("conv_up1") + conv("conv_up2") + conv("conv_hr") + conv("conv_last"))
    assert keys(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4)) == expected
    shapes = {s: RRDBNet(3, 3, scale=s, num_feat=8, num_block=1, num_grow_ch=4).conv_first.weight.shape[1]
              for s in (1, 2, 4)}
    assert shapes == {1: 48, 2: 12, 4: 3}
    dense = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    assert dense["body.0.rdb1.conv5.weight"].shape == (8, 8 + 4 * 4, 3, 3)


def test_srvgg_keys_follow_real_esrgan():
    model = SRVGGNetCompact(3, 3, num_feat=8, num_conv=2, upscale=4)
    expected = (conv("body.0") + ["body.1.weight"] + conv("body.2") + ["body.3.weight"] + conv("body.4")
                + ["body.5.weight"] + conv("body.6"))
    assert keys(model) == expected
    assert model.state_dict()["body.6.weight"].shape == (3 * 16, 8, 3, 3)
    assert keys(SRVGGNetCompact(3, 3, num_feat=8, num_conv=2, act_type="relu")) == (
        conv("body.0") + conv("body.2") + conv("body.4") + conv("body.6"))


def test_rcan_keys():
    def group(g: int) -> list[str]:
        rcab = f"body.{g}.residual_group.0.rcab"
        return (conv(f"{rcab}.0") + conv(f"{rcab}.2") + conv(f"{rcab}.3.attention.1") + conv(f"{rcab}.3.attention.3")
                + conv(f"body.{g}.conv"))

    expected = (conv("conv_first") + group(0) + group(1) + conv("conv_after_body") + conv("upsample.0")
                + conv("conv_last"))
    model = RCAN(3, 3, num_feat=16, num_group=2, num_block=1, squeeze_factor=4, upscale=2)
    assert keys(model) == expected
    assert model.state_dict()["body.0.residual_group.0.rcab.3.attention.1.weight"].shape == (4, 16, 1, 1)


def test_srcnn_keys_and_kernel_sizes():
    model = SRCNN(num_feat=8, num_feat2=4, kernel_sizes=(9, 1, 5))
    assert keys(model) == conv("conv1") + conv("conv2") + conv("conv3")
    assert [model.get_submodule(f"conv{i}").kernel_size for i in (1, 2, 3)] == [(9, 9), (1, 1), (5, 5)]


@pytest.mark.parametrize("input_size, stages", [(64, 4), (128, 5), (256, 6)])
def test_discriminator_keys(input_size, stages):
    expected = conv("conv0_0") + conv("conv0_1", bias=False) + bn("bn0_1")
    for s in range(1, stages):
        expected += conv(f"conv{s}_0", bias=False) + bn(f"bn{s}_0") + conv(f"conv{s}_1", bias=False) + bn(f"bn{s}_1")
    expected += conv("linear1") + conv("linear2")
    model = VGGStyleDiscriminator(3, num_feat=4, input_size=input_size)
    assert keys(model) == expected
    assert model.linear1.weight.shape == (100, 4 * 8 * 4 * 4)


def test_discriminator_rejects_other_sizes():
    with pytest.raises(UserError, match="input_size"):
        VGGStyleDiscriminator(3, 4, input_size=96)
    with pytest.raises(UserError, match="64x64"):
        VGGStyleDiscriminator(3, 4, input_size=64)(torch.rand(1, 3, 32, 32))


# -- shapes and taps -------------------------------------------------------------------------

SMALL = [
    ("MSRResNet", dict(num_feat=8, num_block=2, upscale=2), (1, 3, 6, 5), (1, 3, 12, 10)),
    ("MSRResNet", dict(num_feat=8, num_block=2, upscale=3), (1, 3, 6, 5), (1, 3, 18, 15)),
    ("MSRResNet", dict(num_feat=8, num_block=2, upscale=4), (1, 3, 6, 5), (1, 3, 24, 20)),
    ("SRResNet", dict(num_feat=8, num_block=1, upscale=2), (1, 3, 4, 4), (1, 3, 8, 8)),
    ("EDSR", dict(num_feat=8, num_block=2, upscale=2), (2, 3, 6, 5), (2, 3, 12, 10)),
    ("EDSR", dict(num_feat=8, num_block=2, upscale=3), (1, 3, 6, 5), (1, 3, 18, 15)),
    ("EDSR", dict(num_feat=8, num_block=1, upscale=8), (1, 3, 3, 3), (1, 3, 24, 24)),
    ("RRDBNet", dict(num_feat=8, num_block=1, num_grow_ch=4, scale=1), (1, 3, 8, 8), (1, 3, 8, 8)),
    ("RRDBNet", dict(num_feat=8, num_block=1, num_grow_ch=4, scale=2), (1, 3, 8, 6), (1, 3, 16, 12)),
    ("RRDBNet", dict(num_feat=8, num_block=2, num_grow_ch=4, scale=4), (1, 3, 5, 6), (1, 3, 20, 24)),
    ("RCAN", dict(num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=2), (1, 3, 5, 6), (1, 3, 10, 12)),
    ("RCAN", dict(num_feat=16, num_group=1, num_block=1, squeeze_factor=4, upscale=4), (1, 3, 5, 6), (1, 3, 20, 24)),
    ("SRCNN", dict(num_feat=8, num_feat2=4, upscale=2), (1, 3, 6, 5), (1, 3, 12, 10)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=2, upscale=4), (1, 3, 5, 6), (1, 3, 20, 24)),
    ("SRVGGNetCompact", dict(num_feat=8, num_conv=1, upscale=3, act_type="leakyrelu"), (1, 3, 5, 6), (1, 3, 15, 18)),
    ("SRCNN", dict(num_feat=8, num_feat2=4, upscale=3), (1, 3, 6, 5), (1, 3, 18, 15)),
    ("VGGStyleDiscriminator", dict(num_feat=4, input_size=64), (2, 3, 64, 64), (2, 1)),
    ("VGGStyleDiscriminator", dict(num_feat=4, input_size=128), (2, 3, 128, 128), (2, 1)),
    ("ContentClassifier", dict(num_classes=7, num_feat=4, num_block=3), (2, 3, 16, 16), (2, 7)),
]


@pytest.mark.parametrize("arch, kwargs, in_shape, out_shape", SMALL)
def test_forward_shape(arch, kwargs, in_shape, out_shape):
    model = build_arch(arch, **kwargs).eval()
    with torch.no_grad():
        assert tuple(model(torch.rand(in_shape)).shape) == out_shape


@pytest.mark.parametrize("arch, kwargs, in_shape, out_shape", SMALL)
def test_taps_resolve_and_fire(arch, kwargs, in_shape, out_shape):
    model = build_arch(arch, **kwargs).eval()
    taps = model.feature_taps()
    assert "deep" in taps and "block0" in taps
    sweep = model.sweep_taps()
    assert len(sweep) >= 1 and sweep == [f"block{i}" for i in range(len(sweep))]
    fired: dict[str, tuple] = {}

    def recorder(alias):
        def hook(_module, _inputs, output):
            fired[alias] = tuple(output.shape)  # returning None keeps the module's output

        return hook

    handles = [model.get_submodule(name).register_forward_hook(recorder(alias)) for alias, name in taps.items()]
    with torch.no_grad():
        model(torch.rand(in_shape))
    for h in handles:
        h.remove()
    assert set(fired) == set(taps)


def test_deep_tap_is_last_block():
    assert MSRResNet(num_feat=8, num_block=3).feature_taps()["deep"] == "body.2"
    assert RCAN(num_feat=16, num_group=3, num_block=1, squeeze_factor=4).feature_taps()["deep"] == "body.2"
    assert RRDBNet(num_feat=8, num_block=2, num_grow_ch=4).sweep_taps() == ["block0", "block1"]
    srvgg = SRVGGNetCompact(num_feat=8, num_conv=3)
    assert srvgg.sweep_taps() == ["block0", "block1", "block2", "block3"]
    assert srvgg.feature_taps()["deep"] == srvgg.feature_taps()["block3"] == "body.7"  # the act before the last conv
    assert isinstance(srvgg.get_submodule("body.7"), torch.nn.PReLU) and srvgg.feature_taps()["last"] == "body.8"


def test_tap_outputs_are_not_overwritten_in_place():
    """A hook keeping conv_first's output must see what conv_first computed, not the activation."""
    model = MSRResNet(num_feat=8, num_block=1, upscale=2).eval()
    kept = {}
    model.conv_first.register_forward_hook(lambda _m, _i, out: kept.update(out=out))
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        model(x)
        assert torch.equal(kept["out"], model.conv_first(x))


# -- BasicSR forward arithmetic, re-derived functionally from the weights ---------------------


def _c(sd, name, x, padding=1):
    return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=padding)


def _res_block(sd, p, x, res_scale=1.0):
    return x + _c(sd, f"{p}.conv2", F.relu(_c(sd, f"{p}.conv1", x))) * res_scale


def _basicsr_msrresnet(sd, x, num_block, upscale, global_residual=True):
    lrelu = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
    out = lrelu(_c(sd, "conv_first", x))
    for i in range(num_block):
        out = _res_block(sd, f"body.{i}", out)
    if upscale == 4:
        out = lrelu(F.pixel_shuffle(_c(sd, "upconv1", out), 2))
        out = lrelu(F.pixel_shuffle(_c(sd, "upconv2", out), 2))
    else:
        out = lrelu(F.pixel_shuffle(_c(sd, "upconv1", out), upscale))
    out = _c(sd, "conv_last", lrelu(_c(sd, "conv_hr", out)))
    if global_residual:
        out = out + F.interpolate(x, scale_factor=upscale, mode="bilinear", align_corners=False)
    return out


def _basicsr_edsr(sd, x, num_block, upscale_convs, res_scale, mean, img_range=255.0):
    x = (x - mean) * img_range
    x = _c(sd, "conv_first", x)
    res = x
    for i in range(num_block):
        res = _res_block(sd, f"body.{i}", res, res_scale)
    res = _c(sd, "conv_after_body", res) + x
    for k in range(upscale_convs):
        res = F.pixel_shuffle(_c(sd, f"upsample.{2 * k}", res), 2)
    return _c(sd, "conv_last", res) / img_range + mean


def _basicsr_unshuffle(x, scale):
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    return x.view(b, c, h, scale, w, scale).permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale**2, h, w)


def _basicsr_rrdbnet(sd, x, num_block, scale):
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    feat = {4: x, 2: _basicsr_unshuffle(x, 2), 1: _basicsr_unshuffle(x, 4)}[scale]
    feat = _c(sd, "conv_first", feat)
    body = feat
    for i in range(num_block):
        block_in = body
        for r in (1, 2, 3):
            p = f"body.{i}.rdb{r}"
            xs = [body]
            for k in range(1, 5):
                xs.append(lrelu(_c(sd, f"{p}.conv{k}", torch.cat(xs, 1))))
            body = _c(sd, f"{p}.conv5", torch.cat(xs, 1)) * 0.2 + body
        body = body * 0.2 + block_in
    feat = feat + _c(sd, "conv_body", body)
    feat = lrelu(_c(sd, "conv_up1", F.interpolate(feat, scale_factor=2, mode="nearest")))
    feat = lrelu(_c(sd, "conv_up2", F.interpolate(feat, scale_factor=2, mode="nearest")))
    return _c(sd, "conv_last", lrelu(_c(sd, "conv_hr", feat)))


def _basicsr_rcan(sd, x, num_group, num_block, mean, img_range=255.0):
    x = _c(sd, "conv_first", (x - mean) * img_range)
    res = x
    for g in range(num_group):
        group_in = res
        for b in range(num_block):
            p = f"body.{g}.residual_group.{b}.rcab"
            y = _c(sd, f"{p}.2", F.relu(_c(sd, f"{p}.0", res)))
            w = F.adaptive_avg_pool2d(y, 1)
            w = torch.sigmoid(_c(sd, f"{p}.3.attention.3", F.relu(_c(sd, f"{p}.3.attention.1", w, 0)), 0))
            res = y * w + res
        res = _c(sd, f"body.{g}.conv", res) + group_in
    res = _c(sd, "conv_after_body", res) + x
    res = F.pixel_shuffle(_c(sd, "upsample.0", res), 2)
    return _c(sd, "conv_last", res) / img_range + mean


@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("global_residual", [True, False])
def test_msrresnet_matches_basicsr_forward(upscale, global_residual):
    torch.manual_seed(0)
    model = MSRResNet(num_feat=8, num_block=2, upscale=upscale, global_residual=global_residual).eval()
    x = torch.rand(2, 3, 5, 6)
    with torch.no_grad():
        expected = _basicsr_msrresnet(model.state_dict(), x, 2, upscale, global_residual)
        torch.testing.assert_close(model(x), expected)


def test_global_residual_switch_changes_output_by_the_bilinear_base():
    torch.manual_seed(0)
    with_skip = MSRResNet(num_feat=8, num_block=1, upscale=2, global_residual=True).eval()
    without = MSRResNet(num_feat=8, num_block=1, upscale=2, global_residual=False).eval()
    without.load_state_dict(with_skip.state_dict())
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        difference = with_skip(x) - without(x)
    base = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert difference.abs().max() > 0.1
    torch.testing.assert_close(difference, base)


@pytest.mark.parametrize("upscale, convs, res_scale", [(2, 1, 1.0), (4, 2, 0.1)])
def test_edsr_matches_basicsr_forward(upscale, convs, res_scale):
    torch.manual_seed(0)
    model = EDSR(3, 3, num_feat=8, num_block=2, upscale=upscale, res_scale=res_scale).eval()
    x = torch.rand(1, 3, 5, 6)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _basicsr_edsr(model.state_dict(), x, 2, convs, res_scale, mean))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_matches_basicsr_forward(scale):
    torch.manual_seed(0)
    model = RRDBNet(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _basicsr_rrdbnet(model.state_dict(), x, 2, scale))


def test_rcan_matches_basicsr_forward():
    torch.manual_seed(0)
    model = RCAN(3, 3, num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=2).eval()
    x = torch.rand(1, 3, 5, 6)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _basicsr_rcan(model.state_dict(), x, 2, 2, mean))


def _real_esrgan_srvgg(sd, x, num_conv, upscale):
    out = F.prelu(_c(sd, "body.0", x), sd["body.1.weight"])
    for i in range(num_conv):
        out = F.prelu(_c(sd, f"body.{2 * i + 2}", out), sd[f"body.{2 * i + 3}.weight"])
    out = F.pixel_shuffle(_c(sd, f"body.{2 * num_conv + 2}", out), upscale)
    return out + F.interpolate(x, scale_factor=upscale, mode="nearest")


@pytest.mark.parametrize("upscale", [2, 4])
def test_srvgg_matches_real_esrgan_forward(upscale):
    torch.manual_seed(0)
    model = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, upscale=upscale).eval()
    with torch.no_grad():
        for p in model.parameters():  # PReLU slopes start at 0.25 everywhere: make them differ
            p.add_(torch.randn_like(p) * 0.1)
        x = torch.rand(1, 3, 5, 6)
        torch.testing.assert_close(model(x), _real_esrgan_srvgg(model.state_dict(), x, 3, upscale))


def test_srvgg_detected_from_its_state_dict():
    from ddr_eval.models.checkpoint import detect_arch

    state = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, upscale=2).state_dict()
    assert detect_arch(state) == ("SRVGGNetCompact", {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 3,
                                                      "upscale": 2, "act_type": "prelu"})
    relu = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, act_type="relu").state_dict()
    assert SRVGGNetCompact.infer_kwargs(relu) is None  # the activation has no weights to read it from
    assert SRVGGNetCompact.infer_kwargs(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4).state_dict()) is None
    assert RRDBNet.infer_kwargs(state) is None


def test_pixel_unshuffle_matches_basicsr_channel_order():
    x = torch.arange(2 * 3 * 8 * 4, dtype=torch.float32).view(2, 3, 8, 4)
    for scale in (2, 4):
        assert torch.equal(pixel_unshuffle(x, scale), _basicsr_unshuffle(x, scale))


def test_srcnn_upsamples_bicubically_first():
    model = SRCNN(num_feat=4, num_feat2=4, kernel_sizes=(1, 1, 1), upscale=2).eval()
    # identity mapping: conv1 copies channels into the first 3 features, the rest are zero
    with torch.no_grad():
        for c in (model.conv1, model.conv2, model.conv3):
            c.weight.zero_()
            c.bias.zero_()
            for i in range(3):
                c.weight[i, i] = 1.0
        x = torch.rand(1, 3, 5, 5)
        expected = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).clamp(min=0)
        torch.testing.assert_close(model(x), expected)


def test_classifier_widths_and_downsampling():
    model = ContentClassifier(num_classes=5, num_feat=4, num_block=5)
    widths = [model.blocks[i].conv1.out_channels for i in range(5)]
    assert widths == [4, 8, 16, 32, 32]
    assert model.head.in_features == 32
    out = {}
    model.blocks[1].register_forward_hook(lambda _m, _i, o: out.update(b1=o.shape))
    model.eval()(torch.rand(1, 3, 32, 32))
    assert out["b1"][-2:] == (8, 8)


@pytest.mark.parametrize("arch, kwargs, message", [
    ("MSRResNet", dict(upscale=8), "upscale"),
    ("MSRResNet", dict(num_block=0), "num_block"),
    ("EDSR", dict(upscale=5), "upscale"),
    ("EDSR", dict(num_in_ch=1, num_out_ch=1), "rgb_mean"),
    ("RRDBNet", dict(scale=3), "scale"),
    ("RCAN", dict(num_feat=8, squeeze_factor=16), "squeeze_factor"),
    ("SRCNN", dict(kernel_sizes=(9, 4, 5)), "kernel_sizes"),
    ("MSRResNet", dict(num_feats=8), "num_feats"),
    ("SRVGGNetCompact", dict(act_type="gelu"), "act_type"),
    ("SRVGGNetCompact", dict(num_conv=0), "num_conv"),
])
def test_bad_arguments_are_user_errors(arch, kwargs, message):
    with pytest.raises(UserError, match=message):
        build_arch(arch, **kwargs)


def test_unknown_arch_lists_known():
    with pytest.raises(UserError, match="known: .*MSRResNet"):
        build_arch("NoSuchNet")
