"""Every zoo recipe trains for a few steps; training is seeded and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from ddr_eval.core.errors import UserError
from ddr_eval.models.checkpoint import load_model
from ddr_eval.models.zoo import zoo_dir
from ddr_eval.training.recipe import load_recipe
from ddr_eval.training.trainer import Trainer
from ddr_eval.training.zoo_train import available_recipes, recipe_path, train_zoo_entry, training_order

RECIPES = available_recipes()


def test_every_zoo_entry_has_a_recipe():
    assert {"srresnet-gr", "srresnet-nogr", "srgan-gr", "srgan-nogr", "edsr-mini", "rrdb-mini", "srcnn",
            "srresnet-gr-real", "content-cnn"} <= set(RECIPES)


def test_training_order_puts_parents_first():
    order = training_order(["srgan-gr", "srgan-nogr", "srresnet-gr", "srresnet-nogr"])
    assert order.index("srresnet-gr") < order.index("srgan-gr")
    assert order.index("srresnet-nogr") < order.index("srgan-nogr")
    assert training_order(["srgan-gr"]) == ["srgan-gr"]  # a parent not asked for is not added


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_a_few_steps(name, tmp_path):
    recipe = load_recipe(recipe_path(name))
    if recipe.init_from and not (zoo_dir() / "checkpoints" / recipe.init_from / "model.safetensors").exists():
        pytest.skip(f"{recipe.init_from} is not trained yet")
    result = train_zoo_entry(name, iterations=2, out_dir=tmp_path, register=False, progress=False)
    descriptor = load_model(result.checkpoint)
    assert descriptor.arch == recipe.arch or descriptor.arch in ("MSRResNet", "SRResNet")
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["iter"] == 2
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert ("accuracy" in metrics) if recipe.task == "classification" else (metrics["bicubic_psnr"] > 20)


def _tiny_recipe(**update):
    recipe = load_recipe(recipe_path("srresnet-gr"))
    kwargs = dict(recipe.arch_kwargs, num_feat=8, num_block=1)
    return recipe.model_copy(update={"arch_kwargs": kwargs, "iterations": 6, "snapshots": (0, 6),
                                     "checkpoint_every": 3, "log_every": 1, "batch_size": 2, **update})


def test_resumed_training_equals_uninterrupted(tmp_path):
    full = Trainer(_tiny_recipe(), tmp_path / "full", progress=False).train()
    part_dir = tmp_path / "part"
    interrupted = Trainer(_tiny_recipe(), part_dir, progress=False)
    for step in range(3):  # a run killed right after writing its resume state at step 3
        interrupted._step(step)
    part_dir.mkdir(parents=True)
    interrupted._save_resume(3)
    resumed = Trainer(_tiny_recipe(), part_dir, progress=False).train()
    a = load_model(full.checkpoint).module.state_dict()
    b = load_model(resumed.checkpoint).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gan_without_discriminator_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narch: MSRResNet\niterations: 3\nloss: {gan_weight: 0.1}\n")
    with pytest.raises(UserError, match="discriminator"):
        load_recipe(bad)


def test_unknown_recipe_lists_known(tmp_path):
    with pytest.raises(UserError, match="known: .*srresnet-gr"):
        train_zoo_entry("nope", out_dir=tmp_path)


def test_series_fit_curve_is_measured_and_stored(tmp_path):
    import yaml

    from ddr_eval.models.zoo import Zoo
    from ddr_eval.training.recipe import dump_recipe
    from ddr_eval.training.zoo_train import reevaluate_series

    (tmp_path / "recipes").mkdir()
    (tmp_path / "zoo.yaml").write_text("models: []\n")
    one_test_image = load_recipe(recipe_path("srresnet-gr")).data.model_copy(update={"test_images": ("coins",)})
    recipe = _tiny_recipe(name="tiny", iterations=4, snapshots=(0, 4), data=one_test_image)
    (tmp_path / "recipes" / "tiny.yaml").write_text(dump_recipe(recipe))
    train_zoo_entry("tiny", root=tmp_path, progress=False)
    points = reevaluate_series("tiny", root=tmp_path)
    assert [p["iteration"] for p in points] == [0, 4]
    assert points[0]["psnr"] != points[1]["psnr"]  # different weights, different fit
    stored = Zoo.load(tmp_path / "zoo.yaml").get("tiny").series
    assert [p.psnr for p in stored] == [p["psnr"] for p in points]
    assert yaml.safe_load((tmp_path / "zoo.yaml").read_text())["models"][0]["metrics"]["psnr"] == points[1]["psnr"]
    with pytest.raises(UserError, match="no recipe"):
        reevaluate_series("absent", root=tmp_path)
