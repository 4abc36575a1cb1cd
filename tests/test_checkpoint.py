"""Checkpoint I/O: safe reading, BasicSR compatibility, detection, loading errors, saving."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from hostile_torchscript import ReadsOnLoad, WritesOnLoad, hostile_archive
from safetensors.torch import save_file

from ddr_eval.core.errors import CheckpointError, UserError
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import TRUST_CODE_ENV, detect_arch, load_model, read_state_dict, save_model, sha256_file

CONFIGS = [
    ("MSRResNet", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2)),
    ("MSRResNet", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=3, upscale=3)),
    ("MSRResNet", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=4)),
    ("EDSR", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=2, res_scale=1)),
    ("EDSR", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=3, res_scale=1)),
    ("EDSR", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=8, res_scale=1)),
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2, num_grow_ch=4)),
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=4)),
    ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=1, num_feat=8, num_block=1, num_grow_ch=6)),
    ("RCAN", dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_group=2, num_block=3, squeeze_factor=4, upscale=2)),
    ("SRCNN", dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_feat2=4, kernel_sizes=[9, 1, 5])),
    ("VGGStyleDiscriminator", dict(num_in_ch=3, num_feat=4, input_size=64)),
    ("VGGStyleDiscriminator", dict(num_in_ch=3, num_feat=4, input_size=256)),
    ("ContentClassifier", dict(num_in_ch=3, num_classes=6, num_feat=4, num_block=3)),
]

def _input(arch: str, kwargs: dict) -> torch.Tensor:
    size = kwargs["input_size"] if arch == "VGGStyleDiscriminator" else 16 if arch == "ContentClassifier" else 8
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def _outputs(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(x)


@pytest.mark.parametrize("arch, kwargs", CONFIGS)
def test_detect_arch_recovers_constructor_arguments(arch, kwargs):
    torch.manual_seed(0)
    detected_arch, detected = detect_arch(build_arch(arch, **kwargs).state_dict())
    assert detected_arch == arch
    assert detected == kwargs


def test_detect_arch_edsr_large_gets_paper_res_scale():
    with torch.device("meta"):
        state_dict = build_arch("EDSR", num_feat=256, num_block=32, upscale=2).state_dict()
    assert detect_arch(state_dict) == ("EDSR", dict(num_in_ch=3, num_out_ch=3, num_feat=256, num_block=32,
                                                    upscale=2, res_scale=0.1))


def test_detect_arch_unknown_lists_what_it_saw():
    with pytest.raises(CheckpointError, match="unknown architecture.*foo.weight"):
        detect_arch({"foo.weight": torch.zeros(2), "bar.bias": torch.zeros(2)})


@pytest.mark.parametrize("arch, kwargs", CONFIGS)
def test_safetensors_round_trip_gives_identical_outputs(tmp_path, arch, kwargs):
    torch.manual_seed(0)
    module = build_arch(arch, **kwargs)
    if arch in ("VGGStyleDiscriminator", "ContentClassifier"):  # non-trivial BN statistics
        module.train()(_input(arch, kwargs))
    path = tmp_path / "model.safetensors"
    digest = save_model(path, module, arch, kwargs, purpose=module.purpose, extra_metadata={"iteration": 7})
    descriptor = load_model(path)
    x = _input(arch, kwargs)
    assert torch.equal(_outputs(descriptor.module, x), _outputs(module, x))
    assert descriptor.arch == arch and descriptor.arch_kwargs == kwargs
    assert descriptor.sha256 == digest == sha256_file(path)
    assert descriptor.purpose == module.purpose
    assert descriptor.scale == module.scale_factor
    assert descriptor.source == str(path) and descriptor.name == "model"
    assert descriptor.num_params == sum(p.numel() for p in module.parameters())
    for name in descriptor.taps.values():
        descriptor.module.get_submodule(name)
    _, metadata = read_state_dict(path)
    assert metadata["arch"] == arch and json.loads(metadata["arch_kwargs"]) == kwargs
    assert metadata["iteration"] == "7"


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    module = build_arch("SRCNN", num_feat=4, num_feat2=4)
    path = tmp_path / "deep" / "srcnn.safetensors"
    first = save_model(path, module, "SRCNN", {"num_feat": 4, "num_feat2": 4})
    torch.nn.init.zeros_(module.conv1.weight)
    second = save_model(path, module, "SRCNN", {"num_feat": 4, "num_feat2": 4})
    assert first != second and sha256_file(path) == second
    assert [p.name for p in path.parent.iterdir()] == ["srcnn.safetensors"]


def test_save_refuses_unknown_arch_and_purpose(tmp_path):
    module = build_arch("SRCNN")
    with pytest.raises(UserError, match="unknown architecture"):
        save_model(tmp_path / "a.safetensors", module, "Nope", {})
    with pytest.raises(UserError, match="purpose"):
        save_model(tmp_path / "a.safetensors", module, "SRCNN", {}, purpose="gan")
    assert not list(tmp_path.iterdir())


def test_basicsr_pth_prefers_params_ema_and_strips_module_prefix(tmp_path):
    torch.manual_seed(0)
    ema = build_arch("MSRResNet", num_feat=8, num_block=2, upscale=4)
    plain = build_arch("MSRResNet", num_feat=8, num_block=2, upscale=4)
    path = tmp_path / "net_g_1000.pth"
    torch.save({"params": plain.state_dict(),
                "params_ema": {f"module.{k}": v for k, v in ema.state_dict().items()}}, path)
    descriptor = load_model(path)
    assert descriptor.arch == "MSRResNet" and descriptor.scale == 4
    x = torch.rand(1, 3, 6, 6)
    assert torch.equal(_outputs(descriptor.module, x), _outputs(ema, x))
    assert not torch.equal(_outputs(descriptor.module, x), _outputs(plain, x))
    _, metadata = read_state_dict(path)
    assert metadata == {"format": "pickle", "param_key": "params_ema"}


def test_raw_state_dict_pth_and_legacy_format(tmp_path):
    module = build_arch("EDSR", num_feat=8, num_block=1, upscale=2)
    for legacy in (False, True):
        path = tmp_path / f"edsr_{legacy}.pth"
        torch.save(module.state_dict(), path, _use_new_zipfile_serialization=not legacy)
        x = torch.rand(1, 3, 5, 5)
        assert torch.equal(_outputs(load_model(path).module, x), _outputs(module, x))


@pytest.mark.parametrize("cls", [WritesOnLoad, ReadsOnLoad])
def test_hostile_torchscript_is_refused_and_runs_nothing(tmp_path, cls):
    target = tmp_path / "secret.bin"
    if cls is ReadsOnLoad:
        target.write_bytes(b"\x00" * 64)
    path = hostile_archive(tmp_path, cls, tmp_path / "pending")  # the save itself runs no __setstate__
    target_state = target.exists()
    for load in (read_state_dict, load_model):
        with pytest.raises(CheckpointError, match=r"refused: .*TorchScript archive.*--trust-code") as caught:
            load(path)
        assert "\n" not in str(caught.value)
    assert target.exists() == target_state and not (tmp_path / "pending").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hostile_torchscript_does_run_its_code_when_trusted(tmp_path, monkeypatch):
    """The check above can fail: with --trust-code the same archive really writes its file."""
    marker = tmp_path / "marker"
    path = hostile_archive(tmp_path, WritesOnLoad, marker)
    monkeypatch.setenv(TRUST_CODE_ENV, "1")
    read_state_dict(path)
    assert marker.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_loads_only_with_trust_code(tmp_path, monkeypatch):
    module = build_arch("MSRResNet", num_feat=8, num_block=1, upscale=2).eval()
    path = tmp_path / "scripted.pt"
    torch.jit.trace(module, torch.rand(1, 3, 6, 6)).save(str(path))
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path)
    monkeypatch.setenv(TRUST_CODE_ENV, "1")
    state_dict, metadata = read_state_dict(path)
    assert metadata == {"format": "torchscript"}
    assert set(state_dict) == set(module.state_dict())
    x = torch.rand(1, 3, 6, 6)
    assert torch.equal(_outputs(load_model(path).module, x), _outputs(module, x))


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: code execution a checkpoint must never get."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused_and_never_run(tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_CreatesMarker(proof))).close()
    assert proof.exists(), "the payload does run when unpickled the ordinary way"

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "payload": _CreatesMarker(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refused: the pickle in .*evil\.pth needs to execute code"):
        load_model(path)
    assert not marker.exists()


def test_legacy_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil_legacy.pth"
    path.write_bytes(pickle.dumps({"w": _CreatesMarker(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()


def _truncated(tmp_path: Path, suffix: str) -> Path:
    full = tmp_path / f"full{suffix}"
    module = build_arch("SRCNN", num_feat=4, num_feat2=4)
    if suffix == ".safetensors":
        save_model(full, module, "SRCNN", {})
    else:
        torch.save(module.state_dict(), full)
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.pth", "does not exist"),
    (lambda d: _write(d / "empty.pth", b""), "is empty"),
    (lambda d: _write(d / "notes.pth", b"hello, these are not weights\n"), "not a checkpoint"),
    (lambda d: _write(d / "notes.safetensors", b"hello\n"), "not a readable safetensors"),
    (lambda d: _truncated(d, ".pth"), "truncated"),
    (lambda d: _truncated(d, ".safetensors"), "not a readable safetensors"),
    (lambda d: d, "not a file"),
])
def test_unreadable_files_raise_one_line_checkpoint_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_payload_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="holds a Tensor, not a state dict"):
        read_state_dict(path)
    path = tmp_path / "numbers.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="holds no weights.*epoch"):
        read_state_dict(path)


def test_mis_shaped_missing_and_unexpected_keys_are_listed(tmp_path):
    state_dict = build_arch("MSRResNet", num_feat=8, num_block=2, upscale=2).state_dict()
    path = tmp_path / "narrow.pth"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError, match=r"mis-shaped .*conv_first\.weight \(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        load_model(path, arch="MSRResNet", num_feat=16)

    del state_dict["conv_hr.bias"]
    state_dict["extra.weight"] = torch.zeros(1)
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path, arch="MSRResNet")
    text = str(info.value)
    assert "missing [conv_hr.bias]" in text and "unexpected [extra.weight]" in text and "narrow.pth" in text


def test_wrong_scale_is_a_clear_error(tmp_path):
    module = build_arch("EDSR", num_feat=8, num_block=1, upscale=4)
    st = tmp_path / "edsr.safetensors"
    save_model(st, module, "EDSR", {"num_feat": 8, "num_block": 1, "upscale": 4})
    pth = tmp_path / "edsr.pth"
    torch.save(module.state_dict(), pth)
    for path in (st, pth):
        with pytest.raises(CheckpointError, match="x4 EDSR; x2 was requested"):
            load_model(path, scale=2)
        with pytest.raises(CheckpointError, match="x4 EDSR; x2 was requested"):
            load_model(path, upscale=2)
        assert load_model(path, scale=4).scale == 4
    disc = tmp_path / "d.pth"
    torch.save(build_arch("VGGStyleDiscriminator", num_feat=4, input_size=64).state_dict(), disc)
    with pytest.raises(CheckpointError, match="x1 VGGStyleDiscriminator; x2 was requested"):
        load_model(disc, scale=2)


def test_weightless_arguments_come_from_the_caller(tmp_path):
    srcnn = build_arch("SRCNN", num_feat=8, num_feat2=4, upscale=3)
    path = tmp_path / "srcnn.pth"
    torch.save(srcnn.state_dict(), path)
    assert load_model(path).scale == 2  # the default: upscale is not in the weights
    descriptor = load_model(path, scale=3)
    x = torch.rand(1, 3, 5, 5)
    assert descriptor.scale == 3 and torch.equal(_outputs(descriptor.module, x), _outputs(srcnn, x))

    msr = build_arch("MSRResNet", num_feat=8, num_block=1, upscale=2, global_residual=False)
    torch.save(msr.state_dict(), path)
    assert load_model(path).module.global_residual is True
    assert load_model(path, global_residual=False).module.global_residual is False


def test_recorded_arch_wins_and_contradictions_are_errors(tmp_path):
    module = build_arch("SRResNet", num_feat=8, num_block=1, upscale=2, global_residual=False)
    path = tmp_path / "m.safetensors"
    save_model(path, module, "SRResNet", {"num_feat": 8, "num_block": 1, "upscale": 2, "global_residual": False})
    descriptor = load_model(path, arch="MSRResNet")  # alias of the recorded arch: fine
    assert descriptor.arch == "MSRResNet" and descriptor.module.global_residual is False
    with pytest.raises(CheckpointError, match="holds SRResNet weights .* not EDSR"):
        load_model(path, arch="EDSR")


def test_unknown_architecture_falls_back_to_spandrel_or_says_why_not(tmp_path):
    path = tmp_path / "odd.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    try:
        import spandrel  # noqa: F401
    except ImportError:
        expected = "unknown architecture.*foo.weight.*spandrel unavailable: No module named 'spandrel'"
    else:
        expected = "spandrel could not load it either"
    with pytest.raises(CheckpointError, match=expected):
        load_model(path)


def test_safetensors_with_bad_metadata(tmp_path):
    module = build_arch("SRCNN", num_feat=4, num_feat2=4)
    tensors = {k: v.contiguous() for k, v in module.state_dict().items()}
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata={"arch": "SRCNN", "arch_kwargs": "{not json"})
    with pytest.raises(CheckpointError, match="arch_kwargs is not valid JSON"):
        load_model(path)
    save_file(tensors, str(path), metadata={"arch": "Nope"})
    with pytest.raises(CheckpointError, match="records architecture 'Nope'"):
        load_model(path)


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "blob"
    data = os.urandom(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
