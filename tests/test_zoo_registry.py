"""The zoo file: schema, name resolution, integrity checks, offline behaviour, listing."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
import yaml

from ddr_eval.core.errors import CheckpointError, UserError
from ddr_eval.models import load_model as load_any
from ddr_eval.models.archs import ARCHS, build_arch
from ddr_eval.models.checkpoint import save_model, sha256_file
from ddr_eval.models.zoo import Zoo, cache_dir, count_params, resolve_model, zoo_dir, zoo_file
from ddr_eval.core.specs import SnapshotLabel
from ddr_eval.config.schema import ModelSpec

KWARGS = {"num_feat": 8, "num_block": 1, "upscale": 2}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DDR_EVAL_ZOO", raising=False)
    monkeypatch.setenv("DDR_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DDR_EVAL_OFFLINE", "1")


def _checkpoint(root: Path, rel: str, seed: int = 0) -> tuple[Path, str]:
    torch.manual_seed(seed)
    module = build_arch("MSRResNet", **KWARGS)
    path = root / rel
    return path, save_model(path, module, "MSRResNet", KWARGS)


def _zoo(root: Path, models: list[dict] | None = None, public: list[dict] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "zoo.yaml"
    path.write_text(yaml.safe_dump({"models": models or [], "public": public or []}, sort_keys=False))
    return path


def _entry(name: str, checkpoint: str, sha256: str | None, **extra) -> dict:
    return {"name": name, "arch": "MSRResNet", "arch_kwargs": KWARGS, "scale": 2, "purpose": "sr",
            "checkpoint": checkpoint, "sha256": sha256, "recipe": f"recipes/{name}.yaml", **extra}


# -- the repository's zoo file -----------------------------------------------------------------


def test_repository_zoo_parses_and_is_consistent():
    assert zoo_dir() == Path(__file__).resolve().parents[1] / "model_zoo"
    zoo = Zoo.load()
    assert zoo.path == zoo_file()
    assert isinstance(zoo.models, list) and len(zoo.public) >= 8
    for entry in zoo.public:
        assert entry.arch in ARCHS
        assert entry.url is None or entry.url.startswith("https://")
        with torch.device("meta"):
            module = build_arch(entry.arch, **entry.arch_kwargs)
        assert module.scale_factor == entry.scale, entry.name
        prefix = re.search(r"-([a-f0-9]{8})\.pth$", entry.file or "")
        if entry.sha256 and prefix:  # a stated digest must agree with the official file name
            assert entry.sha256.startswith(prefix.group(1)), entry.name
    names = {e.name for e in zoo.public}
    assert {"RealESRGAN_x4plus", "EDSR_Mx4", "EDSR_Lx4", "ESRGAN_x4", "RCAN_x4", "MSRResNet_x4"} <= names


def test_count_params_matches_a_built_module():
    module = build_arch("RCAN", num_feat=16, num_group=2, num_block=1, squeeze_factor=4, upscale=2)
    kwargs = dict(num_feat=16, num_group=2, num_block=1, squeeze_factor=4, upscale=2)
    assert count_params("RCAN", kwargs) == sum(p.numel() for p in module.parameters())
    assert count_params("EDSR", {"upscale": 5}) is None


# -- trained models ----------------------------------------------------------------------------


def test_resolve_zoo_name_through_env(monkeypatch, tmp_path):
    root = tmp_path / "zoo"
    path, digest = _checkpoint(root, "checkpoints/tiny/model.safetensors")
    zoo_path = _zoo(root, models=[_entry("tiny", "checkpoints/tiny/model.safetensors", digest,
                                         metrics={"psnr": 30.5, "bicubic_psnr": 29.0})])
    monkeypatch.setenv("DDR_EVAL_ZOO", str(zoo_path))
    assert zoo_dir() == root
    descriptor = resolve_model("tiny")
    assert descriptor.name == "tiny" and descriptor.source == "tiny" and descriptor.sha256 == digest
    assert descriptor.arch == "MSRResNet" and descriptor.scale == 2
    assert load_any("tiny").sha256 == digest  # the ARCHITECTURE.md entry point resolves names too
    monkeypatch.setenv("DDR_EVAL_ZOO", str(root))  # a directory works as well
    assert Zoo.load().get("tiny").metrics["psnr"] == 30.5


def test_sha256_mismatch_is_refused(tmp_path):
    root = tmp_path / "zoo"
    _, digest = _checkpoint(root, "checkpoints/a.safetensors")
    wrong = hashlib.sha256(b"something else").hexdigest()
    zoo = Zoo.load(_zoo(root, models=[_entry("a", "checkpoints/a.safetensors", wrong)]))
    with pytest.raises(CheckpointError, match=f"model a: sha256 of .*a.safetensors is {digest}, expected {wrong}"):
        zoo.resolve("a")


def test_missing_checkpoint_names_the_recipe(tmp_path):
    zoo = Zoo.load(_zoo(tmp_path, models=[_entry("ghost", "checkpoints/ghost.safetensors", None)]))
    with pytest.raises(UserError, match="ghost.safetensors is missing; train it with its recipe recipes/ghost.yaml"):
        zoo.resolve("ghost")


def test_unknown_name_lists_zoo_names(tmp_path):
    zoo = Zoo.load(_zoo(tmp_path, models=[_entry("alpha", "c/a.safetensors", None),
                                          _entry("beta", "c/b.safetensors", None)]))
    with pytest.raises(UserError, match="unknown model 'gamma': not a file and not in the zoo .*alpha, beta"):
        zoo.resolve("gamma")
    with pytest.raises(UserError, match="unknown model 'gamma'; zoo models: alpha, beta"):
        zoo.get("gamma")


def test_existing_path_is_loaded_directly(tmp_path):
    path, digest = _checkpoint(tmp_path, "loose.safetensors")
    zoo = Zoo.load(_zoo(tmp_path / "zoo"))
    descriptor = zoo.resolve(str(path))
    assert descriptor.source == str(path) and descriptor.sha256 == digest


def test_series_snapshots_resolve_by_iteration(tmp_path):
    root = tmp_path / "zoo"
    _, final = _checkpoint(root, "checkpoints/s/model.safetensors", seed=0)
    _, early = _checkpoint(root, "checkpoints/s/iter_100.safetensors", seed=1)
    series = [{"iteration": 100, "checkpoint": "checkpoints/s/iter_100.safetensors", "sha256": early}]
    zoo = Zoo.load(_zoo(root, models=[_entry("s", "checkpoints/s/model.safetensors", final, series=series)]))
    snapshot = zoo.resolve("s@100")
    assert snapshot.sha256 == early and snapshot.name == "s@100"
    assert zoo.resolve("s").sha256 == final
    with pytest.raises(UserError, match="no snapshot at iteration 5; known: 100"):
        zoo.resolve("s@5")


@pytest.mark.parametrize("models, message", [
    ([{"name": "x", "arch": "NoNet", "scale": 2, "checkpoint": "c.safetensors"}], r"models\[0\]\.arch: .*unknown"),
    ([{"name": "x", "arch": "EDSR", "scale": 2, "checkpoint": "c.safetensors", "colour": "red"}], "colour"),
    ([{"name": "x", "arch": "EDSR", "scale": 2, "checkpoint": "/abs/c.safetensors"}], "relative"),
    ([{"name": "x", "arch": "EDSR", "scale": 2, "checkpoint": "c", "sha256": "abc"}], "64 lowercase hex"),
    ([{"name": "x y", "arch": "EDSR", "scale": 2, "checkpoint": "c"}], "may only contain"),
    ([{"name": "x", "arch": "EDSR", "scale": 2, "checkpoint": "c"}] * 2, "duplicate model names: x"),
])
def test_invalid_zoo_files_name_file_and_field(tmp_path, models, message):
    path = _zoo(tmp_path, models=models)
    with pytest.raises(UserError, match=message) as info:
        Zoo.load(path)
    assert str(path) in str(info.value)


def test_missing_or_malformed_zoo_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Zoo.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        Zoo.load(bad)


# -- public models -----------------------------------------------------------------------------


def _public(name: str, file: str, url: str | None, sha256: str | None, page: str | None = None) -> dict:
    return {"name": name, "arch": "MSRResNet", "arch_kwargs": KWARGS, "scale": 2, "file": file, "url": url,
            "page": page, "sha256": sha256}


def test_public_model_offline_says_where_to_put_it(tmp_path):
    url = "https://example.invalid/weights/Tiny_x2.pth"
    zoo = Zoo.load(_zoo(tmp_path, public=[_public("Tiny_x2", "Tiny_x2.pth", url, None)]))
    expected = cache_dir() / "Tiny_x2.pth"
    with pytest.raises(UserError, match=re.escape(f"model Tiny_x2 is not available offline; download {url} "
                                                  f"and put it at {expected}")):
        zoo.resolve("Tiny_x2")
    manual = Zoo.load(_zoo(tmp_path / "m", public=[_public("M", "M.pth", None, None, page="https://drive.example")]))
    with pytest.raises(UserError, match="download https://drive.example and put it at"):
        manual.resolve("M")


def test_public_model_from_cache_is_verified(tmp_path):
    source, digest = _checkpoint(tmp_path / "src", "Tiny_x2.safetensors")
    cached = cache_dir() / "Tiny_x2.safetensors"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(source.read_bytes())
    good = Zoo.load(_zoo(tmp_path / "z1", public=[_public("Tiny", "Tiny_x2.safetensors", None, digest, "p")]))
    assert good.resolve("Tiny").sha256 == digest
    wrong = hashlib.sha256(b"x").hexdigest()
    bad = Zoo.load(_zoo(tmp_path / "z2", public=[_public("Tiny", "Tiny_x2.safetensors", None, wrong, "p")]))
    with pytest.raises(CheckpointError, match="sha256"):
        bad.resolve("Tiny")


def test_public_model_hub_hash_prefix_is_checked(tmp_path):
    source, digest = _checkpoint(tmp_path / "src", "w.safetensors")
    for prefix, ok in ((digest[:8], True), ("deadbeef" if digest[:8] != "deadbeef" else "feedface", False)):
        name = f"Tiny_official-{prefix}.safetensors"
        (cache_dir()).mkdir(parents=True, exist_ok=True)
        (cache_dir() / name).write_bytes(source.read_bytes())
        zoo = Zoo.load(_zoo(tmp_path / prefix, public=[_public("T", name, None, None, "p")]))
        if ok:
            assert zoo.resolve("T").sha256 == digest
        else:
            with pytest.raises(CheckpointError, match="file name promises"):
                zoo.resolve("T")


def test_public_model_download_verifies_before_caching(monkeypatch, tmp_path):
    monkeypatch.delenv("DDR_EVAL_OFFLINE")
    source, digest = _checkpoint(tmp_path / "remote", "Tiny_x2.safetensors")
    url = source.as_uri()  # urllib fetches file:// like any URL, without a network
    zoo = Zoo.load(_zoo(tmp_path / "z", public=[_public("Tiny", "Tiny_x2.safetensors", url, digest)]))
    assert zoo.resolve("Tiny").sha256 == digest
    assert sha256_file(cache_dir() / "Tiny_x2.safetensors") == digest

    wrong = hashlib.sha256(b"x").hexdigest()
    bad = Zoo.load(_zoo(tmp_path / "z2", public=[_public("Bad", "Bad_x2.safetensors", url, wrong)]))
    with pytest.raises(CheckpointError, match="sha256"):
        bad.resolve("Bad")
    assert not list(cache_dir().glob("Bad_x2*"))


# -- listing -----------------------------------------------------------------------------------


def test_table_reports_metrics_and_checkpoint_status(tmp_path):
    root = tmp_path / "zoo"
    _, good = _checkpoint(root, "checkpoints/good.safetensors")
    _, other = _checkpoint(root, "checkpoints/changed.safetensors")
    metrics = {"psnr": 31.0, "ssim": 0.9, "bicubic_psnr": 29.5, "bicubic_ssim": 0.85}
    zoo = Zoo.load(_zoo(root, models=[
        _entry("good", "checkpoints/good.safetensors", good, metrics=metrics),
        _entry("changed", "checkpoints/changed.safetensors", hashlib.sha256(b"old").hexdigest()),
        _entry("absent", "checkpoints/absent.safetensors", None),
    ], public=[_public("Pub", "Pub.pth", "https://example.invalid/Pub.pth", None)]))
    rows = {row["name"]: row for row in zoo.table()}
    params = sum(p.numel() for p in build_arch("MSRResNet", **KWARGS).parameters())
    assert rows["good"] == {"name": "good", "kind": "trained", "arch": "MSRResNet", "scale": 2, "params": params,
                            "purpose": "sr", **metrics, "checkpoint": "ok"}
    assert rows["changed"]["checkpoint"] == "sha256 mismatch" and rows["changed"]["psnr"] is None
    assert rows["absent"]["checkpoint"] == "missing"
    assert rows["Pub"]["kind"] == "public" and rows["Pub"]["checkpoint"] == "not downloaded"


def test_the_committed_zoo_stays_under_50_mb():
    from ddr_eval.models.zoo import zoo_dir

    total = sum(p.stat().st_size for p in zoo_dir().rglob("*") if p.is_file())
    assert total <= 50 * 2**20, f"model_zoo/ holds {total / 2**20:.1f} MiB (budget 50)"


def test_a_series_ends_at_the_checkpoint_itself_not_a_copy():
    from ddr_eval.models.zoo import Zoo

    for entry in Zoo.load().models:
        files = [point.checkpoint for point in entry.series]
        assert len(files) == len(set(files)), entry.name
        if entry.series:
            others = [p for p in files if p != entry.checkpoint]
            assert all(p.split("/")[-1].startswith("iter_") for p in others)


@pytest.mark.parametrize("label, parsed", [
    ("s@100", SnapshotLabel("s", 100)),
    ("a@b@7", SnapshotLabel("a@b", 7)),  # the iteration follows the last separator
    ("s", None), ("@5", None), ("s@", None), ("s@1e3", None), ("s@100(untrained)", None), ("s@٣", None),
])
def test_snapshot_labels_parse_one_way(label, parsed):
    assert SnapshotLabel.parse(label) == parsed
    if parsed is not None:
        assert str(parsed) == label


def test_a_suite_names_a_snapshot_as_the_zoo_resolves_it():
    spec = ModelSpec(name="s", iteration=100)
    assert spec.label == "s@100" and SnapshotLabel.parse(spec.label) == SnapshotLabel("s", 100)
