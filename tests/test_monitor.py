"""DDRMonitor inside a training loop: rows logged, the model's mode, gradients and training
numbers untouched, the same numbers as ``evaluate`` on the same checkpoint; optional adapters."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import ddr_eval
from ddr_eval.workflows.monitor import AdapterUnavailableError, DDRMonitor, lightning_callback, tensorboard_sink
from test_api import TINY, TinySR, tiny_model

METRICS = [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10}, {"type": "psnr"}]


def train(steps: int, monitor: DDRMonitor | None, grads_seen: list | None = None) -> TinySR:
    """30 Adam steps on random pairs; the monitor is called after every backward, before the step."""
    net = tiny_model(seed=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(5)
    for iteration in range(steps):
        net.train()
        x = torch.rand(2, 3, 8, 8, generator=generator)
        loss = F.l1_loss(net(x), F.interpolate(x, scale_factor=2, mode="bilinear"))
        optimizer.zero_grad()
        loss.backward()
        if monitor is not None:
            before = [p.grad.clone() for p in net.parameters()]
            rng = torch.random.get_rng_state()
            rows = monitor.step(net, iteration)
            assert net.training  # restored
            assert all(torch.equal(a, p.grad) for a, p in zip(before, net.parameters()))
            assert torch.equal(rng, torch.random.get_rng_state())
            if rows and grads_seen is not None:
                grads_seen.append(iteration)
        torch.rand(1)  # the loop's own use of the global RNG, which the monitor must not shift
        optimizer.step()
    return net


def test_monitor_in_a_30_step_loop_logs_and_changes_nothing(tmp_path):
    monitor = DDRMonitor(TINY, every=10, metrics=METRICS, layers=["body.1"], name="mine", log_dir=tmp_path / "log")
    measured: list[int] = []
    torch.manual_seed(123)
    watched = train(30, monitor, measured)
    torch.manual_seed(123)
    plain = train(30, None)
    assert measured == [0, 10, 20]
    assert all(torch.equal(a, b) for a, b in zip(watched.state_dict().values(), plain.state_dict().values()))

    log = pd.read_csv(tmp_path / "log" / "ddr_log.csv")
    assert sorted(set(log["iteration"])) == [0, 10, 20]
    assert {"chi[degradation,raw]", "psnr"} <= set(log["metric"])
    chi = log[(log["type"] if "type" in log else log["metric"]).astype(str).str.startswith("chi")]
    assert chi["value"].notna().all() and chi["value"].nunique() == 3  # the model changed, so did its DDR
    jsonl = [json.loads(line) for line in (tmp_path / "log" / "ddr_log.jsonl").read_text().splitlines()]
    assert len(jsonl) == len(log)
    assert monitor.finish() == tmp_path / "log" / "ddr_over_training.png"
    assert (tmp_path / "log" / "ddr_over_training.png").stat().st_size > 1000


def test_monitor_numbers_equal_evaluate_on_the_same_checkpoint(tmp_path):
    net = tiny_model(seed=4)
    monitor = DDRMonitor(TINY, every=1, metrics=METRICS, layers=["body.1"], name="mine")
    rows = monitor.step(net, 7)
    checkpoint = tmp_path / "net.pt"
    torch.save(net.state_dict(), checkpoint)
    restored = TinySR()
    restored.load_state_dict(torch.load(checkpoint, weights_only=True))
    suite = {**TINY, "metrics": METRICS}
    results = ddr_eval.evaluate(suite, models=restored, replace=True, name="mine", layers=["body.1"], use_cache=False)
    expected = results.rows.set_index(["layer", "metric", "set"])["value"]
    got = pd.DataFrame(rows).set_index(["layer", "metric", "set"])["value"]
    assert len(got) == len(expected) >= 3
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_monitor_on_sets_and_resume_truncation(tmp_path):
    rng = np.random.default_rng(0)
    sets = {"a": rng.random((6, 8, 8, 3), dtype=np.float32), "b": rng.random((6, 8, 8, 3), dtype=np.float32) * 0.5}
    monitor = DDRMonitor(sets, every=5, layers=["body.1"], log_dir=tmp_path)
    net = tiny_model()
    for iteration in (0, 5, 10):
        assert monitor.step(net, iteration)[0]["iteration"] == iteration
    assert monitor.step(net, 11) is None
    monitor.truncate(5)
    assert sorted(set(pd.read_csv(tmp_path / "ddr_log.csv")["iteration"])) == [0, 5]
    with pytest.raises(ddr_eval.ModelInputError, match="nearest names"):
        DDRMonitor(sets, layers=["body.9"]).step(net, 0)


def test_missing_optional_libraries_are_reported_unavailable(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(AdapterUnavailableError, match="^unavailable: TensorBoard"):
        tensorboard_sink(tmp_path)
    with pytest.warns(UserWarning, match="unavailable"):
        monitor = DDRMonitor({"a": np.zeros((3, 8, 8, 3), np.float32), "b": np.ones((3, 8, 8, 3), np.float32)},
                             tensorboard=tmp_path / "tb")
    assert monitor.status["tensorboard"].startswith("unavailable:")
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)
    with pytest.raises(AdapterUnavailableError, match="^unavailable: the Lightning callback"):
        lightning_callback(monitor)


def test_tensorboard_sink_writes_scalars_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    monitor = DDRMonitor(TINY, metrics=METRICS[:1], layers=["body.1"], tensorboard=tmp_path / "tb")
    monitor.step(copy.deepcopy(tiny_model()), 0)
    monitor.finish()
    assert monitor.status["tensorboard"] == "ok" and list((tmp_path / "tb").iterdir())


def test_zoo_trainer_logs_ddr_of_each_snapshot_without_changing_the_weights(tmp_path):
    from test_training import _tiny_recipe

    from ddr_eval.models.checkpoint import load_model
    from ddr_eval.training.trainer import Trainer

    recipe = _tiny_recipe(iterations=4, snapshots=(0, 2, 4))
    watched = Trainer(recipe, tmp_path / "watched", progress=False).train()
    rng_watched = torch.random.get_rng_state()
    plain = Trainer(recipe, tmp_path / "plain", progress=False, monitor=False).train()
    rng_plain = torch.random.get_rng_state()
    a, b = (load_model(r.checkpoint).module.state_dict() for r in (watched, plain))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(rng_watched, rng_plain)
    assert watched.metrics["psnr"] == plain.metrics["psnr"]
    log = pd.read_csv(tmp_path / "watched" / "ddr_log.csv")
    assert list(log["iteration"]) == [0, 2, 4] and log["value"].notna().all()
    assert (tmp_path / "watched" / "ddr_over_training.png").exists()
    assert not (tmp_path / "plain" / "ddr_log.csv").exists()


def test_lightning_callback_logs_every_value_through_the_module(monkeypatch):
    """Lightning is not installed here: a stand-in ``lightning.pytorch`` with the real hook names
    shows that each measured value reaches ``pl_module.log`` (so every Lightning logger gets it)."""
    import types

    fake = types.ModuleType("lightning.pytorch")
    fake.Callback = type("Callback", (), {})
    monkeypatch.setitem(sys.modules, "lightning", types.ModuleType("lightning"))
    monkeypatch.setitem(sys.modules, "lightning.pytorch", fake)
    monitor = DDRMonitor(TINY, every=2, metrics=METRICS, layers=["body.1"], name="mine")
    logged: dict[str, list[tuple[float, dict]]] = {}

    class Module(TinySR):
        def log(self, name, value, **options):
            logged.setdefault(name, []).append((value, options))

    net = Module()
    net.load_state_dict(tiny_model(seed=1).state_dict())
    callback = lightning_callback(monitor)
    for step in range(3):
        callback.on_train_batch_end(types.SimpleNamespace(global_step=step), net, None, None, step)
    rows = [r for r in monitor.rows if r["value"] is not None]
    assert rows and {r["iteration"] for r in monitor.rows} == {0, 2}
    for row in rows:
        name = f"ddr/{row['metric']}/{row['layer']}/{row['set']}"
        assert [value for value, _ in logged[name]] == [r["value"] for r in rows if
                                                        f"ddr/{r['metric']}/{r['layer']}/{r['set']}" == name]
    assert all(options == {"on_step": True, "on_epoch": False} for calls in logged.values() for _, options in calls)
