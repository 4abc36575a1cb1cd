"""The degraded-input cache (pipeline/inputs_cache.py): same arrays as a fresh preparation, a
key that moves with everything the inputs depend on, and no caching of folder sets."""

import copy
import os

import numpy as np
import pytest

from ddr_eval.pipeline import inputs_cache
from ddr_eval.pipeline.inputs import prepare_inputs
from ddr_eval.pipeline.inputs_cache import InputsCache, cached_inputs, inputs_key
from ddr_eval.config.loader import compile_suite

RAW = {
    "name": "inputs-cache",
    "seed": 3,
    "data": {"source": "embedded", "images": ["astronaut", "chelsea", "camera", "coins"],
             "test_images": ["camera", "coins"], "patch_size": 16, "patches_per_image": 3},
    "degradations": [
        {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
        {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 1.5}, {"type": "bicubic", "scale": 2}]},
        {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 10}]},
    ],
    "models": [{"baseline": "image_statistics"}],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw"}],
}


def loaded_with(**changes):
    raw = copy.deepcopy(RAW)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value
    return compile_suite(raw, "inputs-cache-test")


def assert_same_inputs(a, b):
    for first, second in ((a.eval_sets, b.eval_sets), (a.train_sets, b.train_sets)):
        assert list(first) == list(second)
        for name in first:
            x, y = first[name], second[name]
            assert (x.name, x.split) == (y.name, y.split)
            assert x.lr.dtype == y.lr.dtype and np.array_equal(x.lr, y.lr)
            assert np.array_equal(x.patches.hr, y.patches.hr)
            assert np.array_equal(x.patches.image_index, y.patches.image_index)
            assert np.array_equal(x.patches.patch_index, y.patches.patch_index)
            assert x.patches.image_names == y.patches.image_names


@pytest.mark.parametrize("need_train", [False, True])
def test_a_cached_preparation_equals_a_fresh_one(tmp_path, monkeypatch, need_train):
    loaded = loaded_with()
    store = InputsCache(tmp_path)
    fresh = cached_inputs(loaded, need_train, store)  # a miss: prepared and stored
    calls = []
    monkeypatch.setattr(inputs_cache, "prepare_inputs", lambda *a: calls.append(a) or prepare_inputs(*a))
    again = cached_inputs(loaded, need_train, store)
    assert calls == [] and store.hits == 1
    assert_same_inputs(fresh, again)
    assert_same_inputs(prepare_inputs(loaded, need_train), again)


def test_the_key_moves_with_seed_chain_data_and_split():
    base = inputs_key(loaded_with(), False)
    variants = [
        inputs_key(loaded_with(seed=4), False),
        inputs_key(loaded_with(**{"degradations.1.chain.0.sigma": 1.6}), False),
        inputs_key(loaded_with(**{"data.patches_per_image": 4}), False),
        inputs_key(loaded_with(), True),
    ]
    assert base is not None and len({base, *variants}) == 5
    assert inputs_key(loaded_with(), False) == base  # and nothing else


def test_a_touched_or_replaced_source_file_is_another_key(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "d"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    raw = copy.deepcopy(RAW)
    raw["data"] = {"source": str(tmp_path), "test_fraction": 0.5, "patch_size": 16, "patches_per_image": 2}
    key = inputs_key(compile_suite(raw, "folder"), False)
    assert key is not None and inputs_key(compile_suite(raw, "folder"), False) == key
    stat = (tmp_path / "b.png").stat()
    os.utime(tmp_path / "b.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = inputs_key(compile_suite(raw, "folder"), False)
    assert touched != key
    Image.fromarray(rng.integers(0, 255, (40, 41, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    assert inputs_key(compile_suite(raw, "folder"), False) not in (key, touched)


def test_a_disabled_cache_writes_nothing(tmp_path):
    cached_inputs(loaded_with(), False, InputsCache(tmp_path, enabled=False))
    assert not any(tmp_path.iterdir())
