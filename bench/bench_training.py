"""How long each zoo recipe takes to train on this machine (budget: 20 minutes on 2 cores).

A recipe's wall time is dominated by its optimisation steps, so each benchmark times a few
real steps of the recipe's own ``Trainer`` (its architecture, patch size, batch, loss and, for
GAN recipes, the discriminator step), after a warm-up, and projects
``iterations x median step time``. The projection is what the budget is checked against;
``train_seconds`` in ``model_zoo/zoo.yaml`` records the wall time of the run that made the
checkpoint, which may have shared the machine with other work.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from benchlib import RECIPES
from ddr_eval.training.recipe import load_recipe
from ddr_eval.training.trainer import Trainer

BUDGET_S = 20 * 60
STEPS = 8
WARMUP = 2
NAMES = sorted(p.stem for p in RECIPES.glob("*.yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_recipe_fits_the_training_budget(benchmark, name, tmp_path):
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    trainer = Trainer(recipe, tmp_path, progress=False)  # init_from only sets weights, not speed
    for step in range(WARMUP):
        trainer._step(step)
    times: list[float] = []

    def one_step():
        started = time.perf_counter()
        trainer._step(WARMUP + len(times))
        times.append(time.perf_counter() - started)

    benchmark.pedantic(one_step, rounds=STEPS, iterations=1)
    step_s = statistics.median(times)
    projected = recipe.iterations * step_s
    benchmark.extra_info.update({"recipe": name, "iterations": recipe.iterations, "step_s": step_s,
                                 "projected_train_s": projected, "budget_s": BUDGET_S,
                                 "threads": torch.get_num_threads()})
    assert projected <= BUDGET_S, f"{name}: {recipe.iterations} steps x {step_s:.3f} s = {projected / 60:.1f} min"
