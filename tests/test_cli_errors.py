"""End-to-end input safety through the CLI: hostile or broken checkpoints and bad images.

Every case must end the same way: exit code 2, exactly one line on stderr that names the
culprit, no traceback, no code from a checkpoint ever run, and no report (or output image)
written. The unit tests of each loader live next to their modules; these check that the
guarantees survive the whole path from ``ddr-eval run`` / ``ddr-eval upscale`` down.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hostile_torchscript import ReadsOnLoad, WritesOnLoad, hostile_archive
from PIL import Image as PILImage

from ddr_eval.cli import main
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model

REPO = Path(__file__).resolve().parents[1]
ARCH_KWARGS = dict(num_feat=8, num_block=1, upscale=2)
PATCH = 16


# -- files under test ------------------------------------------------------------------------


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: code execution a checkpoint must never get.

    The pickle stores only ``builtins.open`` and its arguments (not this class), so any Python
    process that unpickles it unsafely would create the marker.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_arch("MSRResNet", **ARCH_KWARGS)


def _hostile_zip(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "hostile.pth"
    torch.save({"params": _small_model().state_dict(), "payload": _CreatesMarker(marker)}, path)
    return path


def _hostile_legacy(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "hostile_legacy.pth"
    path.write_bytes(pickle.dumps({"w": _CreatesMarker(marker)}, protocol=2))
    return path


def _truncated(tmp_path: Path, suffix: str) -> Path:
    full = tmp_path / f"full{suffix}"
    if suffix == ".safetensors":
        save_model(full, _small_model(), "MSRResNet", ARCH_KWARGS)
    else:
        torch.save(_small_model().state_dict(), full)
    cut = tmp_path / f"truncated{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return cut


def _wrong_shaped(tmp_path: Path) -> Path:
    state_dict = _small_model().state_dict()
    state_dict["conv_first.weight"] = torch.zeros(8, 3, 5, 5)
    path = tmp_path / "wrong_shape.pth"
    torch.save(state_dict, path)
    return path


def _nan_weights(tmp_path: Path) -> Path:
    module = _small_model()
    with torch.no_grad():
        module.conv_first.weight[0, 0, 0, 0] = float("nan")
    path = tmp_path / "diverged.safetensors"
    save_model(path, module, "MSRResNet", ARCH_KWARGS)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BROKEN_CHECKPOINTS = {
    "empty": lambda d: _write(d / "empty.pth", b""),
    "text": lambda d: _write(d / "notes.pth", b"these are not weights\n"),
    "truncated_pth": lambda d: _truncated(d, ".pth"),
    "truncated_safetensors": lambda d: _truncated(d, ".safetensors"),
    "wrong_shape": _wrong_shaped,
    "nan_weights": _nan_weights,
    "missing": lambda d: d / "absent.pth",
    "directory": lambda d: (d / "weights.pth").mkdir() or d / "weights.pth",
}


def _png(path: Path, size: int, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path)
    return path


def _image_folder(root: Path, count: int = 3, size: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        _png(root / f"img{i}.png", size, seed=i)
    return root


def _suite(tmp_path: Path, model: Path, images: Path | None = None) -> Path:
    suite = {
        "name": "cli-errors",
        "data": {"source": str(images or _image_folder(tmp_path / "images")), "patch_size": PATCH,
                 "patches_per_image": 2},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 1.5}, {"type": "bicubic", "scale": 2}]},
        ],
        "models": [{"path": str(model), "as": "candidate"}],
        "metrics": [{"type": "chi", "label": "degradation", "bootstrap": 0}],
        "outputs": {"tsne_plots": False, "html": False},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _good_model(tmp_path: Path) -> Path:
    path = tmp_path / "good.safetensors"
    save_model(path, _small_model(), "MSRResNet", ARCH_KWARGS)
    return path


# -- running the CLI ---------------------------------------------------------------------------


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def _assert_one_line_error(code: int, stderr: str, *culprits: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ddr-eval: error: ")
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run from an empty directory so a default ``reports/`` would be noticed, with a private cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _nothing_written(root: Path) -> None:
    assert not (root / "reports").exists()
    assert not (root / "report").exists()
    assert not list(root.rglob("*.tmp")) and not list(root.rglob(".tmp-report-*"))


# -- hostile checkpoints -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [_hostile_zip, _hostile_legacy])
def test_hostile_checkpoint_in_a_suite_is_refused_and_never_run(workdir, capsys, make):
    marker = workdir / "marker"
    checkpoint = make(workdir, marker)
    code, stderr = _cli(["run", str(_suite(workdir, checkpoint)), "--out", str(workdir / "report"), "-q"], capsys)
    _assert_one_line_error(code, stderr, str(checkpoint), "refused")
    assert not marker.exists()
    _nothing_written(workdir)


def test_the_hostile_file_really_runs_code_when_unpickled_unsafely(tmp_path):
    """Guards the test above against passing vacuously: an unsafe load does create the marker."""
    marker = tmp_path / "unsafe-marker"
    torch.load(_hostile_zip(tmp_path, marker), weights_only=False)
    assert marker.exists()


def test_hostile_checkpoint_through_the_installed_entry_point(tmp_path):
    """The real process: ``python -m ddr_eval.cli`` prints one line, exits 2, never runs the payload."""
    marker = tmp_path / "marker"
    checkpoint = _hostile_zip(tmp_path, marker)
    env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(tmp_path / "cache")}
    argv = ["run", str(_suite(tmp_path, checkpoint)), "--out", str(tmp_path / "report")]
    done = subprocess.run([sys.executable, "-m", "ddr_eval.cli", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    _assert_one_line_error(done.returncode, done.stderr, str(checkpoint), "refused")
    assert not marker.exists()
    assert not (tmp_path / "report").exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_upscale_with_a_hostile_protocol_4_pickle_prints_exactly_one_line(tmp_path, legacy):
    """``torch.load(weights_only=True)`` warns about pickle protocols above 2 (twice for a legacy
    file); the whole process output must still be the refusal alone."""
    marker = tmp_path / "marker"
    checkpoint = tmp_path / "evil.pth"
    torch.save({"payload": _CreatesMarker(marker)}, checkpoint, pickle_protocol=4,
               _use_new_zipfile_serialization=not legacy)
    image = tmp_path / "in.png"
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "ddr_eval.cli", "upscale", str(image), str(tmp_path / "out.png"),
                           "--model", str(checkpoint)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("ddr-eval: error: refused: ") and "evil.pth" in output
    assert not marker.exists() and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("cls", [WritesOnLoad, ReadsOnLoad])
@pytest.mark.parametrize("command", ["run", "upscale", "compare"])
def test_hostile_torchscript_is_refused_by_every_command(workdir, capsys, cls, command):
    """A TorchScript archive runs its own code when loaded: run, upscale and compare refuse it
    (one line naming --trust-code, exit 2), and neither its write nor its read happens."""
    target = workdir / "target.bin"
    if cls is ReadsOnLoad:
        target.write_bytes(bytes(64))
    checkpoint = hostile_archive(workdir, cls, target if cls is ReadsOnLoad else workdir / "marker")
    argv = {
        "run": ["run", str(_suite(workdir, checkpoint)), "--out", str(workdir / "report"), "-q"],
        "upscale": ["upscale", str(_png(workdir / "in.png", 12)), str(workdir / "out.png"), "--model", str(checkpoint)],
        "compare": ["compare", "--model", str(checkpoint), "--out", str(workdir / "report"), "-q"],
    }[command]
    code, stderr = _cli(argv, capsys)
    _assert_one_line_error(code, stderr, str(checkpoint), "TorchScript", "--trust-code")
    assert not (workdir / "marker").exists() and not (workdir / "out.png").exists()
    _nothing_written(workdir)


# -- broken checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BROKEN_CHECKPOINTS))
def test_broken_checkpoint_in_a_suite_is_one_line_exit_2_and_no_report(workdir, capsys, kind):
    checkpoint = BROKEN_CHECKPOINTS[kind](workdir)
    code, stderr = _cli(["run", str(_suite(workdir, checkpoint)), "--out", str(workdir / "report"), "-q"], capsys)
    _assert_one_line_error(code, stderr, checkpoint.name)
    _nothing_written(workdir)


@pytest.mark.parametrize("kind", sorted(BROKEN_CHECKPOINTS))
def test_broken_checkpoint_for_upscale_is_one_line_exit_2_and_no_image(workdir, capsys, kind):
    checkpoint = BROKEN_CHECKPOINTS[kind](workdir)
    out = workdir / "out.png"
    code, stderr = _cli(["upscale", str(_png(workdir / "in.png", 12)), str(out), "--model", str(checkpoint)], capsys)
    _assert_one_line_error(code, stderr, checkpoint.name)
    assert not out.exists() and not list(workdir.glob("out.png*"))


# -- bad images --------------------------------------------------------------------------------


def _empty_folder(root: Path) -> Path:
    (root / "images").mkdir()
    (root / "images" / "README.txt").write_text("no images here")
    return root / "images"


def _folder_with_corrupt_file(root: Path) -> Path:
    folder = _image_folder(root / "images")
    _write(folder / "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return folder


def _folder_with_tiny_image(root: Path) -> Path:
    folder = _image_folder(root / "images")
    _png(folder / "thumbnail.png", PATCH - 1)
    return folder


def _folder_with_nan_tiff(root: Path) -> Path:
    folder = _image_folder(root / "images")
    values = np.full((PATCH * 2, PATCH * 2), 0.5, dtype=np.float32)
    values[3, 4] = np.nan
    PILImage.fromarray(values, mode="F").save(folder / "float.tif")
    return folder


def _folder_with_huge_image(root: Path) -> Path:
    """A PNG whose header declares 12000x10000 pixels (over the 100-megapixel limit): refused
    from its header, before anything is decoded."""
    import io
    import struct
    import zlib

    folder = _image_folder(root / "images")
    buffer = io.BytesIO()
    PILImage.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 12000, 10000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (folder / "panorama.png").write_bytes(bytes(data))
    return folder


BAD_FOLDERS = {  # kind -> (make the folder, what the one-line message must name)
    "missing": (lambda root: root / "no-such-folder", ("no-such-folder",)),
    "empty": (_empty_folder, ("empty image folder",)),
    "corrupt": (_folder_with_corrupt_file, ("broken.png",)),
    "smaller_than_patch": (_folder_with_tiny_image, ("thumbnail.png",)),
    "nan_pixels": (_folder_with_nan_tiff, ("float.tif",)),
    "huge": (_folder_with_huge_image, ("huge image", "panorama.png")),
}


@pytest.mark.parametrize("kind", sorted(BAD_FOLDERS))
def test_bad_image_folder_is_one_line_exit_2_and_no_report(workdir, capsys, kind):
    make, culprits = BAD_FOLDERS[kind]
    suite = _suite(workdir, _good_model(workdir), images=make(workdir))
    code, stderr = _cli(["run", str(suite), "-q"], capsys)
    _assert_one_line_error(code, stderr, *culprits)
    _nothing_written(workdir)


def test_tiny_image_is_refused_even_when_the_split_would_not_sample_it(workdir, capsys):
    """Whether a too-small image is noticed must not depend on which split the seed puts it in."""
    folder = _folder_with_tiny_image(workdir)
    for eval_split in ("test", "train"):
        suite_path = _suite(workdir, _good_model(workdir), images=folder)
        suite = yaml.safe_load(suite_path.read_text())
        suite["data"]["eval_split"] = eval_split
        suite_path.write_text(yaml.safe_dump(suite))
        code, stderr = _cli(["run", str(suite_path), "-q"], capsys)
        _assert_one_line_error(code, stderr, "thumbnail.png", "patch")


@pytest.mark.parametrize("name, data", [("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20),
                                        ("text.jpg", b"not an image at all")])
def test_unreadable_image_for_upscale(workdir, capsys, name, data):
    out = workdir / "out.png"
    image = _write(workdir / name, data)
    code, stderr = _cli(["upscale", str(image), str(out), "--model", str(_good_model(workdir))], capsys)
    _assert_one_line_error(code, stderr, name)
    assert not out.exists()


def test_a_good_run_does_write_its_report(workdir, capsys):
    """The positive control for the cases above: the same suite with a sound model succeeds."""
    code, _ = _cli(["run", str(_suite(workdir, _good_model(workdir))), "--out", str(workdir / "report"), "-q"],
                   capsys)
    assert code == 0
    assert {"leaderboard.md", "results.csv", "results.json"} <= {p.name for p in (workdir / "report").iterdir()}


def _folder_of_every_mode(root: Path) -> Path:
    """Grey, grey+alpha, RGBA, palette, 16-bit grey and an EXIF-rotated JPEG, all usable."""
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).convert("L").save(folder / "grey.png")
    PILImage.fromarray(rgb).convert("LA").save(folder / "grey_alpha.png")
    PILImage.fromarray(rgb).convert("RGBA").save(folder / "rgba.png")
    PILImage.fromarray(rgb).convert("P").save(folder / "palette.png")
    PILImage.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(folder / "deep.png")
    exif = PILImage.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    PILImage.fromarray(rgb).save(folder / "rotated.jpg", exif=exif.tobytes())
    return folder


def test_every_image_mode_runs_end_to_end(workdir, capsys):
    """The formats users have (the decoding rules are unit-tested in test_data.py) all reach a report."""
    folder = _folder_of_every_mode(workdir)
    out = workdir / "report"
    code, stderr = _cli(["run", str(_suite(workdir, _good_model(workdir), images=folder)), "--out", str(out), "-q"],
                        capsys)
    assert code == 0, stderr
    import json

    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows and all(r["value"] is not None for r in rows), rows
    from ddr_eval.data.images import load_folder

    shapes = {image.name: image.pixels.shape for image in load_folder(folder)}
    assert shapes["rotated.jpg"] == (48, 40, 3)  # upright: EXIF rotation applied
    assert all(shape[2] == 3 for shape in shapes.values()) and len(shapes) == 6


def test_an_unusable_output_path_fails_before_any_work(workdir, capsys):
    """A report directory that is a file (or lies under one) is refused up front, not after the run."""
    blocker = workdir / "taken"
    blocker.write_text("a file, not a directory")
    suite = _suite(workdir, _good_model(workdir))
    for out in (blocker, blocker / "report"):
        code, stderr = _cli(["run", str(suite), "--out", str(out), "-q"], capsys)
        _assert_one_line_error(code, stderr, str(out), "not a directory")
    assert not list((workdir / "cache").rglob("*.npz")), "features were computed for a run that could not report"
    image = _png(workdir / "in.png", 12)
    code, stderr = _cli(["upscale", str(image), str(blocker / "out.png"), "--model", str(_good_model(workdir))], capsys)
    _assert_one_line_error(code, stderr, "not a directory")
