"""DDR-guided blind SR (#14): the conditioned generator, its sampler, its training and its finding."""


import numpy as np
import pytest
import torch

from ddr_eval.data import load_embedded
from ddr_eval.degradations.chain import blur_and_noise_sigmas
from ddr_eval.findings import compute_findings
from ddr_eval.models.archs import build_arch
from ddr_eval.models.zoo import zoo_dir
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import compile_suite
from ddr_eval.training.recipe import load_recipe
from ddr_eval.training.sampler import ConditionedSampler
from ddr_eval.training.zoo_train import train_zoo_entry

EXTRACTOR = {"num_feat": 8, "num_block": 2, "upscale": 2}
MIX = [[{"type": "bicubic", "scale": 2}],
       [{"type": "gaussian_blur", "sigma": [0.5, 2.5]}, {"type": "bicubic", "scale": 2}],
       [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": [5, 25]}]]


def recipe_arch(name: str):
    recipe = load_recipe(zoo_dir() / "recipes" / f"{name}.yaml")
    return build_arch(recipe.arch, **recipe.arch_kwargs)


def test_blind_sr_trains_as_many_parameters_as_the_unconditioned_model_within_10_percent():
    blind = recipe_arch("ddr-blind-sr")
    trainable = sum(p.numel() for p in blind.trainable_parameters())
    unconditioned = sum(p.numel() for p in recipe_arch("srresnet-gr-real").parameters())
    assert abs(trainable / unconditioned - 1) <= 0.10
    assert all(not p.requires_grad for p in blind.extractor.parameters())


def test_the_ddr_embedding_sees_the_degradation_and_the_oracle_its_parameters():
    torch.manual_seed(0)
    blind = build_arch("DDRConditionedSR", condition="ddr", num_feat=8, num_block=2, extractor=EXTRACTOR).eval()
    clean = torch.rand(2, 3, 16, 16)
    noisy = (clean + 0.2 * torch.randn_like(clean)).clamp(0, 1)
    assert not torch.allclose(blind.embed(clean), blind.embed(noisy))
    oracle = build_arch("DDRConditionedSR", condition="oracle", num_feat=8, num_block=2).eval()
    torch.nn.init.normal_(oracle.body[0].sft.weight)  # zero-initialised: the identity until trained
    first = oracle(clean)
    oracle.set_condition((2.0, 15.0))
    assert first.shape == (2, 3, 32, 32) and not torch.allclose(first, oracle(clean))


def test_train_mode_keeps_the_frozen_extractor_in_eval_mode():
    blind = build_arch("DDRConditionedSR", condition="ddr", num_feat=8, num_block=2, extractor=EXTRACTOR)
    blind.train()
    assert blind.training and not blind.extractor.training


def test_conditioned_sampler_returns_the_drawn_sigmas_inside_their_ranges():
    images = load_embedded(["astronaut", "camera"])
    sampler = ConditionedSampler(images, MIX, patch_size=16, seed=1)
    batch = sampler.batch(step=3, batch_size=24)
    blur, noise = batch.degradation[:, 0], batch.degradation[:, 1]
    assert ((blur == 0) | ((blur >= 0.5) & (blur <= 2.5))).all()
    assert ((noise == 0) | ((noise >= 5) & (noise <= 25))).all()
    assert not ((blur > 0) & (noise > 0)).any()  # no family of this mix has both
    again = sampler.batch(step=3, batch_size=24)
    assert np.array_equal(batch.lr, again.lr) and np.array_equal(batch.degradation, again.degradation)
    assert blur_and_noise_sigmas([{"type": "gaussian_blur", "sigma": 1.5}, {"type": "bicubic"}]) == (1.5, 0.0)


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    """Three steps of each shipped recipe: the extractor stays srgan-gr's, the rest moves."""
    root = tmp_path_factory.mktemp("blind")
    return {name: train_zoo_entry(name, iterations=3, out_dir=root / name, register=False, progress=False)
            for name in ("ddr-blind-sr", "ddr-blind-sr-oracle")}


def test_training_leaves_the_extractor_as_the_zoo_model(tiny_trained):
    from ddr_eval.models.checkpoint import load_model

    trained = load_model(tiny_trained["ddr-blind-sr"].checkpoint).module
    srgan = load_model(zoo_dir() / "checkpoints" / "srgan-gr" / "model.safetensors").module
    for key, value in srgan.state_dict().items():
        assert torch.equal(trained.extractor.state_dict()[key], value), key
    untrained = recipe_arch("ddr-blind-sr")
    assert not torch.equal(untrained.encoder[0].weight, trained.encoder[0].weight)


def test_the_blind_sr_finding_on_a_tiny_suite(tiny_trained):
    raw = {
        "name": "blind-tiny", "seed": 0, "scale": 2,
        "data": {"source": "embedded", "images": ["astronaut", "camera", "coins", "chelsea"],
                 "test_images": ["coins", "chelsea"], "patch_size": 32, "patches_per_image": 3},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                         {"name": "blur1", "chain": [{"type": "gaussian_blur", "sigma": 1.0}, {"type": "bicubic"}]},
                         {"name": "blur4", "chain": [{"type": "gaussian_blur", "sigma": 4.0}, {"type": "bicubic"}]}],
        "models": [{"path": str(tiny_trained["ddr-blind-sr"].checkpoint), "as": "blind"}, "srresnet-gr-real",
                   {"path": str(tiny_trained["ddr-blind-sr-oracle"].checkpoint), "as": "oracle"}],
        "metrics": [{"type": "params"}],
        "findings": {"bootstrap": 20, "blind_sr": {"blind": "blind", "unconditioned": "srresnet-gr-real",
                                                   "oracle": "oracle", "inside": ["clean", "blur1"],
                                                   "outside": ["blur4"]}},
    }
    result = run_suite(compile_suite(raw, "blind-tiny"), progress=False)
    (finding,) = compute_findings(result)
    assert finding.key == "blind_sr" and finding.verdict in ("reproduced", "partly reproduced", "not reproduced")
    assert [row["set"] for row in finding.table] == ["clean", "blur1", "blur4"]
    assert finding.numbers["blur4"]["range"] == "outside"
    inside = [v["gain_db"] for v in finding.numbers.values() if isinstance(v, dict) and v["range"] == "inside"]
    assert finding.numbers["mean_gain_inside_db"] == pytest.approx(np.mean(inside))
    assert isinstance(finding.numbers["sets_won_inside"], int) and 0 <= finding.numbers["sets_won_inside"] <= len(inside)
    low, high = finding.numbers["blur1"]["gain_ci"]
    assert low <= finding.numbers["blur1"]["gain_db"] <= high
