"""What a hostile or unlucky user can do to a run (issue #25): names that collide with summary
rows, alias bombs and numeric extremes in free-form fields, damaged cache entries, full disks,
memory errors, killed processes, and two runs sharing one cache and one report directory.

Each class of input ends in a computed report or in one ``ddr-eval: error:`` line (exit 2),
never a traceback and never a wrong number read from a damaged file.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_suite import tiny_project

from ddr_eval.core.atomic import atomic_write_text, process_umask, remove_orphan_temps
from ddr_eval.cli import main
from ddr_eval.core.errors import UserError
from ddr_eval.cache.store import ENTRY_RECORD, FeatureCache, cache_entries, entry_record, write_npz_atomic
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.core.outdir import mark_report_dir
from ddr_eval.pipeline.inputs import planned_inputs, prepare_inputs
from ddr_eval.pipeline.results_cache import ResultCache
from ddr_eval.config.loader import compile_suite, load_suite

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "suites" / "smoke.yaml").read_text())
QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


def _suite_with(**changes) -> dict:
    raw = copy.deepcopy(SMOKE)
    raw.update(changes)
    return raw


def _refused(raw, match: str) -> str:
    with pytest.raises(UserError, match=match) as info:
        compile_suite(raw, "s.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("s.yaml: ")
    return message


def _run_cli(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


def _one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ddr-eval: error:"), err
    return lines[0]


# -- names --------------------------------------------------------------------------------------


@QUICK
@given(st.sampled_from(["mean", "median", "all"]), st.lists(st.booleans(), min_size=6, max_size=6))
def test_a_set_named_like_a_summary_row_is_refused(name, upper):
    name = "".join(c.upper() if u else c for c, u in zip(name, upper))
    raw = _suite_with()
    raw["degradations"][1]["name"] = name
    _refused(raw, r"degradations\[1\]\.name: .*reserved for summary rows")


@QUICK
@given(st.text(min_size=1, max_size=6), st.sampled_from(list("|/\\ \t\n:*`<>")))
def test_a_set_name_with_an_unsafe_character_is_refused(text, bad):
    raw = _suite_with()
    raw["degradations"][1]["name"] = f"a{text}{bad}"
    _refused(raw, r"degradations\[1\]\.name")


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a b", ""])
def test_a_suite_name_that_is_not_a_safe_directory_name_is_refused(name):
    _refused(_suite_with(name=name), r"s.yaml: name")


def test_a_summary_name_registered_later_is_refused_too():
    from ddr_eval.metrics.base import AGGREGATIONS

    AGGREGATIONS.register("trimmed")(max)
    try:
        raw = _suite_with()
        raw["degradations"][1]["name"] = "trimmed"
        _refused(raw, r"degradations\[1\]\.name: 'trimmed' is reserved")
    finally:
        AGGREGATIONS.unregister("trimmed")


# -- free-form fields ---------------------------------------------------------------------------


def _alias_bomb(levels: int = 9) -> str:
    lines = ["      l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        lines.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["models", "metrics", "findings"])
def test_an_alias_bomb_in_a_free_form_field_is_refused_at_load(tmp_path, where):
    smoke = (REPO / "suites" / "smoke.yaml").read_text()
    bomb = _alias_bomb()
    if where == "models":
        text = smoke.replace("models: [srresnet-gr, srresnet-nogr]",
                             "models:\n  - name: srresnet-gr\n    arch_kwargs:\n" + bomb, 1)
    elif where == "metrics":
        text = smoke.replace("metrics:\n", "metrics:\n  - type: chi\n    bomb:\n" + bomb + "\n", 1)
    else:
        text = smoke + "findings:\n  bomb:\n" + bomb.replace("      ", "    ") + "\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert len(text) - len(smoke) < 1000
    started = time.perf_counter()
    with pytest.raises(UserError, match="more than 100000 values"):
        load_suite(path)
    assert time.perf_counter() - started < 5


def test_deep_nesting_and_huge_integers_are_one_line_errors(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\nx: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(UserError, match="nested too deeply"):
        load_suite(deep)
    nested = _suite_with()
    value: list = []
    for _ in range(100):
        value = [value]
    nested["models"][0] = {"name": nested["models"][0] if isinstance(nested["models"][0], str) else "x",
                           "arch_kwargs": {"deep": value}}
    _refused(nested, "nested more than 64 levels")
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: huge\nseed: " + "9" * 5000 + "\n")
    with pytest.raises(UserError, match="unreadable value"):
        load_suite(huge)
    _refused(_suite_with(seed=2**70), "integer beyond 64 bits")
    _refused(_suite_with(seed=-(2**63) - 1), "integer beyond 64 bits")


@pytest.mark.parametrize("seed, ok", [(-1, False), (0, True), (2**63 - 1, True), (2**63, False)])
def test_the_seed_is_a_non_negative_64_bit_number(seed, ok):
    raw = _suite_with(seed=seed)
    if ok:
        assert compile_suite(raw, "s.yaml").suite.seed == seed
    else:
        _refused(raw, "seed: must be")


# -- a tiny project -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """test_fuzz_suite's tiny project with three photographs, named tiny, its cache on."""
    raw = tiny_project(tmp_path_factory.mktemp("reliability"), images=3)
    del raw["runtime"]
    return {**raw, "name": "tiny"}


def _write_suite(tmp_path: Path, raw: dict, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_network_larger_than_the_budget_is_refused_before_it_is_built(project, tmp_path, capsys, monkeypatch):
    raw = copy.deepcopy(project)
    raw["models"][0]["arch_kwargs"] = {"num_feat": 100_000}
    built = []
    original = torch.nn.Conv2d.__init__
    monkeypatch.setattr(torch.nn.Conv2d, "__init__", lambda self, *a, **k: (built.append(
        str(torch.empty(0).device)), original(self, *a, **k))[1])
    code, err = _run_cli(["run", _write_suite(tmp_path, raw), "--out", tmp_path / "out", "-q"], capsys)
    line = _one_error_line(code, err)
    assert "model tiny: arch_kwargs" in line and "memory budget" in line
    assert "cpu" not in built, "a layer was built on a real device"
    assert not (tmp_path / "out").exists()


def test_too_many_patches_are_refused_before_any_input_is_made(project, tmp_path, capsys, monkeypatch):
    raw = copy.deepcopy(project)
    raw["data"]["patches_per_image"] = 10**12
    made = []
    monkeypatch.setattr("ddr_eval.pipeline.inputs_cache.prepare_inputs", lambda *a: made.append(a))
    started = time.perf_counter()
    code, err = _run_cli(["run", _write_suite(tmp_path, raw), "--out", tmp_path / "out", "-q"], capsys)
    assert "runtime.expected_memory_gib" in _one_error_line(code, err)
    assert made == [] and time.perf_counter() - started < 30
    assert cache_entries(Path(os.environ["DDR_EVAL_FEATURE_CACHE"])) == []


@pytest.mark.parametrize("changes", [{}, {"eval_split": "all"}, {"test_fraction": 0.5}, {"images": ["0.png", "2.png"]}])
@pytest.mark.parametrize("need_train", [False, True])
def test_the_planned_inputs_have_the_shapes_of_the_real_ones(project, changes, need_train):
    raw = copy.deepcopy(project)
    raw["data"].update(changes)
    loaded = compile_suite(raw, "s.yaml")
    if need_train and raw["data"].get("eval_split") == "all":
        pytest.skip("a training split beside eval_split: all is not a suite anyone writes")
    planned, real = planned_inputs(loaded, need_train), prepare_inputs(loaded, need_train)
    for mine, theirs in ((planned.eval_sets, real.eval_sets), (planned.train_sets, real.train_sets)):
        assert list(mine) == list(theirs)
        for name in mine:
            assert mine[name].lr.shape == theirs[name].lr.shape and mine[name].patches.hr.shape == theirs[name].patches.hr.shape


def test_the_planned_inputs_of_the_embedded_photographs_match_too():
    loaded = load_suite(REPO / "suites" / "smoke.yaml")
    planned, real = planned_inputs(loaded, True), prepare_inputs(loaded, True)
    assert {k: v.lr.shape for k, v in planned.eval_sets.items()} == {k: v.lr.shape for k, v in real.eval_sets.items()}
    assert {k: v.lr.shape for k, v in planned.train_sets.items()} == {k: v.lr.shape for k, v in real.train_sets.items()}


# -- the cache is never trusted -----------------------------------------------------------------

# large enough that reading a header does not read (and CRC-check) the whole array
FEATURES = {"body": np.arange(4 * 4000, dtype=np.float32).reshape(4, 4000) / 7}
OUTPUTS = np.linspace(0, 1, 4 * 4 * 4 * 3, dtype=np.float32).reshape(4, 4, 4, 3)


def _stored(root: Path, key: str = "ab" * 32) -> tuple[FeatureCache, Path]:
    cache = FeatureCache(root)
    cache.put(key, FeatureBatch(features=dict(FEATURES), outputs=OUTPUTS))
    return cache, cache._path(key)


@QUICK
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_a_flipped_byte_is_a_miss_or_recomputed_never_a_wrong_number(tmp_path_factory, flips):
    root = tmp_path_factory.mktemp("flips")
    _, path = _stored(root)
    data = bytearray(path.read_bytes())
    for where, bits in flips:
        data[int(where * len(data))] ^= bits
    path.write_bytes(bytes(data))
    recomputed = []
    batch = FeatureCache(root).get("ab" * 32, rows=4, recompute=lambda: recomputed.append(1) or dict(FEATURES))
    if batch is None:
        assert not path.exists(), "a damaged entry stays"
        return
    np.testing.assert_array_equal(batch.features["body"], FEATURES["body"])
    if recomputed:
        assert not path.exists()


def test_a_lazily_read_damaged_entry_is_removed_and_recomputed(tmp_path, caplog):
    _, path = _stored(tmp_path)
    data = bytearray(path.read_bytes())
    start = data.index(FEATURES["body"].tobytes()[:16])  # inside the feature array's bytes: only its CRC-32 tells
    data[start + FEATURES["body"].nbytes - 8] ^= 0x55
    path.write_bytes(bytes(data))
    batch = FeatureCache(tmp_path).get("ab" * 32, rows=4, recompute=lambda: dict(FEATURES))
    assert batch is not None  # the directory and headers are intact, so this is a hit until the array is read
    with caplog.at_level(logging.WARNING, logger="ddr_eval.cache"):
        np.testing.assert_array_equal(batch.features["body"], FEATURES["body"])
    assert not path.exists() and "unusable" in caplog.text
    again = FeatureCache(tmp_path)
    assert again.get("ab" * 32) is None and again.misses == 1


def test_without_a_way_to_recompute_a_damaged_read_is_one_line(tmp_path):
    _, path = _stored(tmp_path)
    data = bytearray(path.read_bytes())
    data[data.index(FEATURES["body"].tobytes()[:16]) + FEATURES["body"].nbytes - 8] ^= 0x55
    path.write_bytes(bytes(data))
    batch = FeatureCache(tmp_path).get("ab" * 32)
    with pytest.raises(UserError, match="damaged .* run again"):
        batch.features["body"]
    assert not path.exists()


def test_a_valid_entry_with_other_rows_is_a_miss(tmp_path):
    cache, path = _stored(tmp_path)
    assert cache.get("ab" * 32, rows=8) is None and not path.exists()
    half = {"body": FEATURES["body"][:2]}  # rewritten with its own (consistent) record: still not this cell
    write_npz_atomic(path, {**half, ENTRY_RECORD: entry_record("features", half)})
    assert FeatureCache(tmp_path).get("ab" * 32, rows=4) is None


def test_an_entry_whose_arrays_differ_from_its_record_is_a_miss(tmp_path):
    _, path = _stored(tmp_path)
    write_npz_atomic(path, {"body": FEATURES["body"][:2], ENTRY_RECORD: entry_record("features", FEATURES)})
    assert FeatureCache(tmp_path).get("ab" * 32) is None and not path.exists()


def test_an_entry_of_another_kind_or_without_record_is_a_miss(tmp_path):
    results = ResultCache(tmp_path / "elsewhere")
    key = "cd" * 32
    FeatureCache(tmp_path).put(key, FeatureBatch(features=dict(FEATURES), outputs=None))
    path = FeatureCache(tmp_path)._path(key)
    target = results._path(key)
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes())  # a feature entry where a result should be
    assert results.get(key) is None and not target.exists()
    write_npz_atomic(path, dict(FEATURES))  # no record at all (another program, an older version)
    assert FeatureCache(tmp_path).get(key) is None and not path.exists()


def test_a_directory_in_place_of_an_entry_is_a_miss_and_is_replaced(tmp_path):
    cache = ResultCache(tmp_path)
    path = cache._path("ef" * 32)
    (path / "inside").mkdir(parents=True)
    assert cache.get("ef" * 32) is None and not path.exists()
    from ddr_eval.pipeline.results_cache import MetricPart

    path.mkdir()
    cache.put("ef" * 32, MetricPart())
    assert path.is_file() and cache.get("ef" * 32) is not None


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EACCES])
def test_a_failed_cache_write_warns_once_and_the_run_goes_on(project, tmp_path, monkeypatch, capsys, caplog, error):
    calls = []

    def failing(path, arrays):
        calls.append(path)
        raise OSError(error, os.strerror(error), str(path))

    monkeypatch.setattr("ddr_eval.cache.store.write_npz_atomic", failing)
    with caplog.at_level(logging.WARNING, logger="ddr_eval.cache"):
        with pytest.raises(SystemExit) as exit_info:
            main(["run", str(_write_suite(tmp_path, project)), "--out", str(tmp_path / "out"), "-q"])
    assert exit_info.value.code == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    warnings = [r for r in caplog.records if "continuing without caching" in r.getMessage()]
    assert len(warnings) <= 3 and len(calls) == len(warnings)  # one per store (features, results, inputs), once each
    assert os.strerror(error) in warnings[0].getMessage()


def test_a_full_report_disk_is_one_line_and_keeps_the_old_report(project, tmp_path, monkeypatch, capsys):
    suite, out = _write_suite(tmp_path, project), tmp_path / "out"
    assert _run_cli(["run", suite, "--out", out, "-q"], capsys)[0] == 0
    before = (out / "results.json").read_text()

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    code, err = _run_cli(["run", suite, "--out", out, "-q"], capsys)
    monkeypatch.undo()
    line = _one_error_line(code, err)
    assert "no space left" in line and "--out" in line
    assert (out / "results.json").read_text() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-report-")]


def test_running_out_of_memory_in_the_metrics_is_one_line(project, tmp_path, monkeypatch, capsys):
    def allocator(*args, **kwargs):  # what numpy raises when an allocation fails
        raise MemoryError("Unable to allocate 7.28 TiB for an array with shape (1000000000000,)")

    monkeypatch.setattr("ddr_eval.pipeline.reduce.Reducer.compute_source", allocator)
    code, err = _run_cli(["run", _write_suite(tmp_path, project), "--out", tmp_path / "out", "-q", "--no-cache"], capsys)
    line = _one_error_line(code, err)
    assert "out of memory" in line and "runtime.batch_size" in line


# -- files: modes, orphans, bound, stale plots --------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomically_written_files_honour_the_umask(tmp_path, monkeypatch, umask):
    import ddr_eval.core.atomic as atomic

    monkeypatch.setattr(atomic, "_umask", umask)
    path = atomic_write_text(tmp_path / "f.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_the_process_umask_is_read_without_changing_it():
    current = os.umask(0o022)
    os.umask(current)
    assert process_umask() == current


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphaned_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    orphan = tmp_path / "ab" / f".x.npz.pid{dead}.k2j3.tmp"
    live = tmp_path / "ab" / f".y.npz.pid{alive}.k2j3.tmp"
    report_orphan = tmp_path / f".tmp-report-pid{dead}-abc"
    for path in (orphan, live):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half")
    (report_orphan / "leaderboard.md").parent.mkdir()
    (report_orphan / "leaderboard.md").write_text("half")
    foreign = tmp_path / ".someone-elses.tmp"
    foreign.write_text("keep")
    assert remove_orphan_temps(tmp_path, recursive=True, legacy=False) == 2
    assert not orphan.exists() and not report_orphan.exists() and live.exists() and foreign.exists()


def test_the_size_bound_evicts_the_least_recently_used(tmp_path, monkeypatch):
    arrays = {"body": np.random.default_rng(0).random((100,), dtype=np.float32)}
    FeatureCache(tmp_path / "probe").put("ff" * 32, FeatureBatch(features=arrays, outputs=None))
    (entry_size,) = [s.st_size for _, s in cache_entries(tmp_path / "probe")]
    bound = int(3.5 * entry_size)
    monkeypatch.setenv("DDR_EVAL_CACHE_MAX", str(bound))
    cache = FeatureCache(tmp_path / "bounded")
    keys = [f"{i:02d}" * 32 for i in range(4)]
    for i, key in enumerate(keys[:3]):
        cache.put(key, FeatureBatch(features=arrays, outputs=None))
        os.utime(cache._path(key), (1000 + i, 1000 + i))  # written long ago, in this order
    assert cache.get(keys[0]) is not None  # the oldest entry is used now
    cache.put(keys[3], FeatureBatch(features=arrays, outputs=None))  # a fourth does not fit
    left = {path.stem for path, _ in cache_entries(tmp_path / "bounded")}
    assert sum(s.st_size for _, s in cache_entries(tmp_path / "bounded")) <= bound
    assert left == {keys[0], keys[2], keys[3]}  # keys[1] was used least recently


def test_a_bad_cache_bound_is_one_line(project, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DDR_EVAL_CACHE_MAX", "lots")
    code, err = _run_cli(["run", _write_suite(tmp_path, project), "--out", tmp_path / "out", "-q"], capsys)
    assert "DDR_EVAL_CACHE_MAX" in _one_error_line(code, err)


def test_cache_info_and_clear_older_than(project, tmp_path, monkeypatch, capsys):
    assert _run_cli(["run", _write_suite(tmp_path, project), "--out", tmp_path / "out", "-q"], capsys)[0] == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["cache", "info"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert int(lines["features"][1]) == 2 and int(lines["results"][1]) >= 1 and int(lines["inputs"][1]) == 1
    assert "bound: 5 GB" in out
    root = Path(os.environ["DDR_EVAL_FEATURE_CACHE"])
    entries = cache_entries(root)
    old = entries[0][0]
    os.utime(old, (time.time() - 10 * 86400,) * 2)
    with pytest.raises(SystemExit):
        main(["cache", "clear", "--older-than", "7"])
    assert "removed 1 cache entries unused for 7 days" in capsys.readouterr().out
    assert not old.exists() and len(cache_entries(root)) == len(entries) - 1


def test_plots_an_earlier_report_listed_are_removed(project, tmp_path, capsys):
    out = tmp_path / "out"
    mark_report_dir(out)  # an earlier ddr-eval report, of another suite
    (out / "other-suite_tsne.png").write_bytes(b"png")
    (out / "mine.png").write_bytes(b"not listed: not ours")
    (out / "results.json").write_text(json.dumps({"plots": ["other-suite_tsne.png", "../escape.png"]}))
    (tmp_path / "escape.png").write_bytes(b"outside")
    assert _run_cli(["run", _write_suite(tmp_path, project), "--out", out, "-q"], capsys)[0] == 0
    assert not (out / "other-suite_tsne.png").exists()
    assert (out / "mine.png").exists() and (tmp_path / "escape.png").exists()


# -- two processes, one cache, one report directory -----------------------------------------------


def test_two_processes_share_a_cache_and_a_report_directory(project, tmp_path):
    suite, out, cache = _write_suite(tmp_path, project), tmp_path / "out", tmp_path / "shared-cache"
    env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "ddr_eval.cli", "run", str(suite), "--out", str(out), "-q"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [run.communicate(timeout=240) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    assert all("Traceback" not in err for _, err in outcomes)
    document = json.loads((out / "results.json").read_text())
    assert document["rows"]
    leftovers = [p for root in (cache, out) for p in root.rglob("*") if p.name.endswith(".tmp") or
                 p.name.startswith(".tmp-report-")]
    assert leftovers == []
    for path, _ in cache_entries(cache):  # every entry whole and valid
        with np.load(path, allow_pickle=False) as data:
            assert ENTRY_RECORD in data.files
