"""CinCGAN (#14): unpaired data, the two cycles' training, the deployed chain and its finding."""

import torch

from ddr_eval.findings import compute_findings
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import load_model
from ddr_eval.models.zoo import zoo_dir
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import compile_suite
from ddr_eval.training.cincgan import CinCGANTrainer, total_variation
from ddr_eval.training.recipe import load_recipe
from ddr_eval.training.zoo_train import make_trainer, train_zoo_entry


def recipe(iterations=3):
    loaded = load_recipe(zoo_dir() / "recipes" / "cincgan.yaml")
    return loaded.model_copy(update={"iterations": iterations, "checkpoint_every": 2})


def test_degraded_and_clean_patches_come_from_different_photographs(tmp_path):
    trainer = make_trainer(recipe(), tmp_path, progress=False)
    assert isinstance(trainer, CinCGANTrainer)
    degraded = {image.name for image in trainer.degraded.images}
    clean = {image.name for image in trainer.clean.images}
    assert degraded and clean and not degraded & clean
    assert degraded | clean == {image.name for image in trainer.train_images}


def test_the_deployed_chain_is_sr_of_the_denoised_input():
    model = build_arch("CinCGAN", upscale=2, num_feat=8, num_block=2, denoiser_feat=8).eval()
    x = torch.rand(2, 3, 12, 12)
    assert torch.allclose(model(x), model.sr(model.denoiser(x)))
    assert model.feature_taps()["deep"].startswith("sr.body.")
    assert total_variation(torch.ones(1, 3, 4, 4)) == 0


def test_training_moves_the_reverse_generator_and_saves_the_deployed_chain(tmp_path):
    first = make_trainer(recipe(2), tmp_path / "a", progress=False)
    before = {k: v.clone() for k, v in first.reverse.state_dict().items()}
    first._step(0)
    assert any(not torch.equal(before[k], v) for k, v in first.reverse.state_dict().items())
    state = first._resume_state()
    assert {"reverse", "downscaler", "d_lr", "d_hr", "d_optimizer"} <= set(state)
    first._save(tmp_path / "model.safetensors", 1)
    assert isinstance(load_model(tmp_path / "model.safetensors").module, type(first.model))


def test_the_cincgan_finding_on_a_tiny_suite(tmp_path):
    trained = train_zoo_entry("cincgan", iterations=2, out_dir=tmp_path / "cincgan", register=False, progress=False)
    raw = {
        "name": "cincgan-tiny", "seed": 0, "scale": 2,
        "data": {"source": "embedded", "images": ["astronaut", "camera", "coins", "chelsea"],
                 "test_images": ["coins", "chelsea"], "patch_size": 32, "patches_per_image": 4},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                         {"name": "noise", "chain": [{"type": "bicubic"}, {"type": "gaussian_noise", "sigma": 20}]}],
        "models": [{"path": str(trained.checkpoint), "as": "cincgan"}, "srresnet-nogr"],
        "metrics": [{"type": "psnr"}],
        "findings": {"bootstrap": 20, "cincgan": {"baseline": "srresnet-nogr", "sets": ["clean", "noise"]}},
    }
    (finding,) = compute_findings(run_suite(compile_suite(raw, "cincgan-tiny"), progress=False))
    assert finding.key == "cincgan" and finding.verdict in ("reproduced", "partly reproduced", "not reproduced")
    assert finding.numbers["chi"] > 0 and [row["model"] for row in finding.table] == ["cincgan", "srresnet-nogr"]
