"""Scale is a property of the suite: chains and models follow it, and `compare` picks a suite by it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from ddr_eval.cli import main
from ddr_eval.workflows.compare import compare_model, suite_for_model
from ddr_eval.core.errors import UserError
from ddr_eval.models.archs import ARCHS
from ddr_eval.models.checkpoint import save_model
from ddr_eval.config.loader import compile_suite
from ddr_eval.config.shipped import shipped_suite

ROOT = Path(__file__).resolve().parents[1]

X4 = {
    "name": "x4-mini",
    "seed": 0,
    "scale": 4,
    "data": {"patch_size": 32, "patches_per_image": 2},
    "degradations": [
        {"name": "clean", "chain": [{"type": "bicubic"}]},
        {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]},
    ],
    "models": ["srresnet-gr-x4"],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10}, {"type": "psnr"}],
}


def _error(raw: dict) -> str:
    with pytest.raises(UserError) as info:
        compile_suite(raw, "suite.yaml")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bicubic_without_scale_takes_the_suites():
    loaded = compile_suite(X4, "suite.yaml")
    assert loaded.scale == 4
    assert all(chain.scale == 4 for chain in loaded.chains.values())
    assert loaded.chains["clean"].spec()[0]["scale"] == 4


def test_a_chain_that_disagrees_with_the_suite_scale_names_its_set():
    raw = copy.deepcopy(X4)
    raw["degradations"][1]["chain"][1] = {"type": "bicubic", "scale": 2}
    message = _error(raw)
    assert message.startswith("suite.yaml: degradations[1].chain:") and "'blur' downsamples x2" in message
    assert "scale is 4" in message


def test_unsupported_scale_is_refused():
    message = _error({**X4, "scale": 5})
    assert message.startswith("suite.yaml: scale:")


def test_without_suite_scale_a_bicubic_step_needs_its_own():
    raw = copy.deepcopy(X4)
    del raw["scale"]
    assert "degradations[0].chain[0].scale" in _error(raw)


def test_suites_without_scale_keep_their_hash():
    raw = copy.deepcopy(X4)
    del raw["scale"]
    for dset in raw["degradations"]:
        dset["chain"][-1]["scale"] = 4
    loaded = compile_suite(raw)
    assert '"scale"' not in loaded.suite.canonical_json().split('"data"')[0]
    assert compile_suite({**raw, "scale": 4}).suite.sha256() != loaded.suite.sha256()


def test_shipped_suites_by_scale():
    assert shipped_suite(2) == ROOT / "suites" / "generalization.yaml"
    assert shipped_suite(4) == ROOT / "suites" / "generalization-x4.yaml"
    assert shipped_suite(3) is None


def _checkpoint(path: Path, **kwargs) -> Path:
    torch.manual_seed(0)
    torch.save({"params": ARCHS.get("MSRResNet")(**kwargs).state_dict()}, path)  # a BasicSR-style .pth
    return path


def test_a_model_of_the_wrong_scale_is_one_line_exit_2_naming_a_suite_that_fits(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    x2 = _checkpoint(tmp_path / "mine_x2.pth", num_feat=8, num_block=1, upscale=2)
    raw = {**copy.deepcopy(X4), "models": [{"path": str(x2)}], "outputs": {"dir": str(tmp_path / "out")}}
    suite = tmp_path / "x4.yaml"
    suite.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as info:
        main(["run", str(suite), "-q"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model mine_x2 is x2 but the suite is x4" in err and "suites/generalization.yaml" in err
    assert not (tmp_path / "out").exists()


def test_compare_without_suite_picks_the_shipped_suite_of_the_models_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("DDR_EVAL_SUITES", str(tmp_path / "suites"))
    (tmp_path / "suites").mkdir()
    tiny = dict(num_feat=8, num_block=2, upscale=4)
    zoo = [tmp_path / f"zoo{i}.safetensors" for i in range(2)]
    for i, path in enumerate(zoo):
        torch.manual_seed(i)
        save_model(path, ARCHS.get("MSRResNet")(**tiny), "MSRResNet", tiny)
    shipped = {**copy.deepcopy(X4), "name": "generalization-x4",
               "models": [{"path": str(p), "as": f"zoo-{i}"} for i, p in enumerate(zoo)],
               "outputs": {"dir": str(tmp_path / "report"), "tsne_plots": False}}
    (tmp_path / "suites" / "generalization-x4.yaml").write_text(yaml.safe_dump(shipped))
    mine = _checkpoint(tmp_path / "my_x4.pth", **tiny)
    assert suite_for_model(mine) == tmp_path / "suites" / "generalization-x4.yaml"
    outcome = compare_model(mine, progress=False, out_dir=tmp_path / "cmp")
    (placement,) = outcome.comparison.placements
    assert placement.of == 3 and {n.model for n in placement.neighbours} <= {"zoo-0", "zoo-1"}
    x3 = _checkpoint(tmp_path / "my_x3.pth", num_feat=8, num_block=1, upscale=3)
    with pytest.raises(UserError, match="x3 and no shipped generalization suite is"):
        suite_for_model(x3)


@pytest.mark.slow
def test_public_size_msrresnet_x4_runs_through_compare(tmp_path, monkeypatch):
    """A random-init full-size BasicSR MSRResNet x4 (64 ch, 16 blocks) against a two-set mini suite."""
    monkeypatch.chdir(tmp_path)
    full = _checkpoint(tmp_path / "MSRResNet_x4.pth", num_feat=64, num_block=16, upscale=4)
    tiny = dict(num_feat=8, num_block=2, upscale=4)
    zoo = tmp_path / "zoo.safetensors"
    save_model(zoo, ARCHS.get("MSRResNet")(**tiny), "MSRResNet", tiny)
    suite = tmp_path / "mini.yaml"
    suite.write_text(yaml.safe_dump({**copy.deepcopy(X4), "models": [{"path": str(zoo), "as": "zoo"}],
                                     "outputs": {"tsne_plots": False}}))
    outcome = compare_model(full, suite, progress=False)
    (placement,) = outcome.comparison.placements
    assert placement.model == "MSRResNet_x4" and placement.of == 2
    assert (outcome.out_dir / "report.html").is_file()
