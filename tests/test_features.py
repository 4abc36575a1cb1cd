"""Tests for ddr_eval.features: hooks, pooling, batching, OOM back-off and device selection."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.features import FeatureBatch, autocast_context, extract_features, select_device
from ddr_eval.features.extract import extract_poolings


def _tiny_sr_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # "0"
        nn.ReLU(inplace=True),  # "1": modifies the output of "0" in place
        nn.Conv2d(4, 12, 3, padding=1),  # "2"
        nn.PixelShuffle(2),  # "3": N,3,2h,2w
    )


@pytest.fixture
def lr_batch() -> np.ndarray:
    return np.random.default_rng(0).random((10, 6, 5, 3), dtype=np.float32)


def _nchw(lr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(lr).permute(0, 3, 1, 2)


def test_pooled_shapes_for_gap_gmp_and_flatten(lr_batch):
    model = _tiny_sr_net()
    for pooling, width in [("gap", 4), ("gmp", 4), ("flatten", 4 * 6 * 5)]:
        result = extract_features(model, lr_batch, ["0", "2"], pooling=pooling, device="cpu")
        assert isinstance(result, FeatureBatch) and result.outputs is None
        assert result.features["0"].shape == (10, width)
        assert result.features["0"].dtype == np.float32
        assert result.features["2"].shape[0] == 10


def test_values_equal_a_manual_forward(lr_batch):
    model = _tiny_sr_net()
    with torch.no_grad():
        conv0 = model[0](_nchw(lr_batch))  # before the in-place ReLU touches it
        conv2 = model[2](torch.relu(conv0))
    gap = extract_features(model, lr_batch, ["0", "2"], pooling="gap", device="cpu").features
    np.testing.assert_allclose(gap["0"], conv0.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gap["2"], conv2.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    gmp = extract_features(model, lr_batch, ["2"], pooling="gmp", device="cpu").features
    np.testing.assert_allclose(gmp["2"], conv2.amax(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    flat = extract_features(model, lr_batch, ["0"], pooling="flatten", device="cpu").features
    assert (flat["0"] < 0).any(), "flatten must capture the map before the in-place ReLU"
    np.testing.assert_allclose(flat["0"], conv0.reshape(10, -1).numpy(), rtol=1e-5, atol=1e-6)


def test_several_poolings_from_one_forward_pass_equal_separate_passes(lr_batch):
    model = _tiny_sr_net()
    calls = []
    model[2].register_forward_hook(lambda *_: calls.append(1))
    together = extract_poolings(model, lr_batch, ["0", "2"], ("flatten", "gap", "gmp"), batch_size=4,
                                return_outputs=True, device="cpu")
    assert len(calls) == 3  # one forward pass per batch of 4, not one per pooling
    for pooling, batch in together.items():
        alone = extract_features(model, lr_batch, ["0", "2"], pooling=pooling, return_outputs=True, device="cpu")
        assert batch.features.keys() == alone.features.keys()
        for layer in ("0", "2"):
            np.testing.assert_array_equal(batch.features[layer], alone.features[layer])
        np.testing.assert_array_equal(batch.outputs, alone.outputs)
    with pytest.raises(UserError, match="unknown pooling 'max'"):
        extract_poolings(model, lr_batch, ["0"], ("gap", "max"), device="cpu")


def test_results_do_not_depend_on_batch_size(lr_batch):
    model = _tiny_sr_net()
    reference = extract_features(model, lr_batch, ["0", "2"], batch_size=64, return_outputs=True, device="cpu")
    for batch_size in (1, 3, 7):
        result = extract_features(
            model, lr_batch, ["0", "2"], batch_size=batch_size, return_outputs=True, device="cpu"
        )
        for layer in ("0", "2"):
            np.testing.assert_allclose(result.features[layer], reference.features[layer], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.outputs, reference.outputs, rtol=1e-5, atol=1e-6)


def test_outputs_are_nhwc_clipped_images(lr_batch):
    model = _tiny_sr_net()
    result = extract_features(model, lr_batch, ["0"], return_outputs=True, device="cpu")
    with torch.no_grad():
        expected = model(_nchw(lr_batch).contiguous()).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert result.outputs.shape == (10, 12, 10, 3) and result.outputs.dtype == np.float32
    np.testing.assert_allclose(result.outputs, expected, rtol=1e-5, atol=1e-6)
    assert result.outputs.min() >= 0.0 and result.outputs.max() <= 1.0


def test_hooks_are_removed_and_training_flag_restored(lr_batch):
    model = _tiny_sr_net().train()
    extract_features(model, lr_batch, ["0", "2"], device="cpu")
    assert all(not module._forward_hooks for module in model.modules())
    assert model.training


def test_hooks_are_removed_after_an_error(lr_batch):
    model = _tiny_sr_net()
    with pytest.raises(RuntimeError, match="channels"):
        extract_features(model, lr_batch[..., :2], ["0"], device="cpu")  # 2 channels: conv fails
    assert all(not module._forward_hooks for module in model.modules())


def test_unknown_layer_lists_available_modules(lr_batch):
    with pytest.raises(UserError, match=r"no module 'body\.9'.*available include"):
        extract_features(_tiny_sr_net(), lr_batch, ["body.9"], device="cpu")


def test_bad_arguments_are_user_errors(lr_batch):
    model = _tiny_sr_net()
    with pytest.raises(UserError, match="pooling"):
        extract_features(model, lr_batch, ["0"], pooling="mean", device="cpu")
    with pytest.raises(UserError, match="batch_size"):
        extract_features(model, lr_batch, ["0"], batch_size=0, device="cpu")
    with pytest.raises(UserError, match="N,h,w,C"):
        extract_features(model, lr_batch[0], ["0"], device="cpu")


class _TupleBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, x):
        y = self.conv(x)
        return y, y * 0  # e.g. (features, auxiliary) as some blocks return


class _TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = _TupleBlock()
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        features, _ = self.block(x)
        return self.head(features.mean(dim=(2, 3)))


def test_tuple_outputs_take_the_first_tensor_and_2d_outputs_pass_through(lr_batch):
    model = _TupleNet()
    result = extract_features(model, lr_batch, ["block", "head"], device="cpu")
    with torch.no_grad():
        conv = model.block.conv(_nchw(lr_batch))
        head = model.head(conv.mean(dim=(2, 3)))
    np.testing.assert_allclose(result.features["block"], conv.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.features["head"], head.numpy(), rtol=1e-5, atol=1e-6)


class _Tail(nn.Module):
    calls = 0

    def forward(self, x):
        type(self).calls += 1
        return x


def test_forward_stops_after_the_last_tapped_layer_when_outputs_are_not_needed(lr_batch):
    model = nn.Sequential(nn.Conv2d(3, 3, 1), _Tail())
    _Tail.calls = 0
    extract_features(model, lr_batch, ["0"], batch_size=5, device="cpu")
    assert _Tail.calls == 0
    extract_features(model, lr_batch, ["0"], batch_size=5, return_outputs=True, device="cpu")
    assert _Tail.calls == 2


class _FlakyMemoryNet(nn.Module):
    """Pretends batches larger than 2 do not fit in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.batch_sizes: list[int] = []

    def forward(self, x):
        self.batch_sizes.append(len(x))
        if len(x) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(x)


def test_out_of_memory_halves_the_batch_and_retries(lr_batch):
    model = _FlakyMemoryNet()
    seen = []
    result = extract_features(model, lr_batch, ["conv"], batch_size=8, device="cpu", progress=seen.append)
    assert model.batch_sizes[:3] == [8, 4, 2]
    assert set(model.batch_sizes[3:]) <= {2}
    assert sum(seen) == 10 and max(seen) == 2
    with torch.no_grad():
        expected = model.conv(_nchw(lr_batch)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(result.features["conv"], expected, rtol=1e-5, atol=1e-6)


def test_other_runtime_errors_are_not_swallowed(lr_batch):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        extract_features(nn.Sequential(Broken()), lr_batch, ["0"], device="cpu")


def test_progress_reports_every_patch_once(lr_batch):
    seen = []
    extract_features(_tiny_sr_net(), lr_batch, ["0"], batch_size=4, device="cpu", progress=seen.append)
    assert seen == [4, 4, 2]


def test_select_device_on_a_cpu_only_machine():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert select_device("cpu") == torch.device("cpu")
    expected_auto = "mps" if torch.backends.mps.is_available() else "cpu"
    assert select_device("auto").type == expected_auto
    assert select_device(None).type == expected_auto
    with pytest.raises(UserError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(UserError, match="CUDA is not available"):
        select_device("cuda:1")
    with pytest.raises(UserError, match="unknown device"):
        select_device("tpu9")


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")
def test_autocast_context_is_a_no_op_off_cuda():
    assert isinstance(autocast_context(torch.device("cpu"), "bf16"), contextlib.nullcontext)
    assert isinstance(autocast_context("cpu", None), contextlib.nullcontext)
    assert isinstance(autocast_context("cuda", "fp16"), torch.autocast)
    with pytest.raises(UserError, match="mixed-precision"):
        autocast_context("cpu", "int8")


def test_read_only_and_float64_inputs_are_accepted(lr_batch):
    model = _tiny_sr_net()
    reference = extract_features(model, lr_batch, ["2"], device="cpu").features["2"]
    frozen = lr_batch.copy()
    frozen.flags.writeable = False
    np.testing.assert_allclose(extract_features(model, frozen, ["2"], device="cpu").features["2"], reference)
    as_double = extract_features(model, lr_batch.astype(np.float64), ["2"], device="cpu").features["2"]
    np.testing.assert_allclose(as_double, reference)
