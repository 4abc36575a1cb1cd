"""What DDRMonitor costs a training run: one call versus the training steps between two calls.

Per SR zoo recipe, the monitor the zoo trainer uses (``snapshot_monitor_suite``: 4 held-out
photographs x 8 patches x 3 degradation sets, CHI on the deep tap) is called on the recipe's
network, and a training step of the same recipe (its batch size and patch size, Adam, GAN term
where the recipe has one) is timed right before it, so both see the same machine load. The
figure of merit is the share of the training budget the monitor takes at ``every=500``:
``monitor_call_seconds / (500 x step_seconds)``, target at most 0.05. Run one recipe with
``pytest bench/bench_monitor.py -k srresnet-gr``.
"""

from __future__ import annotations

import statistics
import time

import pytest

from ddr_eval.models.zoo import zoo_dir
from ddr_eval.workflows.monitor import DDRMonitor
from ddr_eval.training.recipe import load_recipe
from ddr_eval.training.trainer import Trainer, snapshot_monitor_suite
from ddr_eval.training.zoo_train import available_recipes, recipe_path

EVERY = 500
TARGET = 0.05
STEPS = 3  # timed training steps per round (after one untimed warm-up step)
ROUNDS = 3
SR_RECIPES = [n for n in available_recipes() if load_recipe(recipe_path(n)).task == "sr"]


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@pytest.mark.parametrize("name", SR_RECIPES)
def test_monitor_cost_per_call_vs_training_steps(benchmark, name, tmp_path):
    recipe = load_recipe(recipe_path(name))
    init = zoo_dir() / "checkpoints" / recipe.init_from / "model.safetensors" if recipe.init_from else None
    trainer = Trainer(recipe, tmp_path, init_checkpoint=init if init and init.exists() else None, progress=False,
                      monitor=False)
    monitor = DDRMonitor(snapshot_monitor_suite(recipe), every=EVERY, name=name, seed=recipe.seed)
    trainer._step(0)
    monitor.measure(trainer.model, 0)  # warm-up: first-call checks (layers, scale probe), lazy imports

    step_times: list[float] = []
    call_times: list[float] = []
    state = {"step": 1}

    def train_steps() -> None:
        for _ in range(STEPS):
            step_times.append(_seconds(lambda: trainer._step(state["step"])))
            state["step"] += 1

    benchmark.pedantic(lambda: call_times.append(_seconds(lambda: monitor.measure(trainer.model, state["step"]))),
                       setup=train_steps, rounds=ROUNDS, iterations=1)
    step_seconds = statistics.median(step_times)
    call_seconds = statistics.median(call_times)
    share = call_seconds / (EVERY * step_seconds)
    benchmark.extra_info.update({
        "recipe": name, "arch": recipe.arch, "batch_size": recipe.batch_size, "patch_size": recipe.data.patch_size,
        "step_seconds": step_seconds, "monitor_call_seconds": call_seconds, "every": EVERY,
        "share_of_training_budget": share, "target": TARGET, "meets_target": share <= TARGET,
        "monitor_patches": sum(len(lr) for lr in monitor.lr_sets.values()),
    })
    assert share <= TARGET, (f"{name}: a monitor call ({call_seconds:.3f} s) is {share:.3f} of {EVERY} training "
                             f"steps ({step_seconds:.4f} s each), above {TARGET}")
