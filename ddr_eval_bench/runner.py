"""``ddr-eval bench``: run the benchmarks in ``bench/`` and summarise them in ``reports/bench/``.

The benchmarks are pytest-benchmark tests kept out of the test suite (see ``bench/conftest.py``).
This runs them in-process with ``--benchmark-json`` into ``reports/bench/benchmarks.json`` and
renders ``reports/bench/summary.md`` from that file alone: every benchmark stores its ratios,
exponents and timings in ``extra_info``, so the summary can be rebuilt from the JSON of any run
(:func:`write_summary`). Whether a target was met is read from those numbers too, so the
summary says it even when the benchmark's own assertion failed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ddr_eval.core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
DEFAULT_OUT = Path("reports") / "bench"
BENCHMARKS_JSON = "benchmarks.json"
SUMMARY_MD = "summary.md"
INSTALL = "pip install 'ddr-eval[bench]'"


def run_benchmarks(out_dir: Path | str = DEFAULT_OUT, pytest_args: Sequence[str] = (),
                   bench_dir: Path | str = BENCH_DIR) -> tuple[int, Path]:
    """Run ``pytest bench`` with its JSON into ``out_dir``, then write the summary next to it.

    Returns pytest's exit code (non-zero when a benchmark missed its target or failed) and the
    summary's path. Extra ``pytest_args`` (``-k extraction``, ``--benchmark-disable``) pass through.
    """
    bench_dir = Path(bench_dir)
    if not (bench_dir / "conftest.py").is_file():
        raise UserError(f"no benchmarks at {bench_dir}: they live in the source tree's bench/ directory "
                        "(run from a checkout of ddr-eval)")
    try:
        import pytest
        import pytest_benchmark  # noqa: F401
    except ImportError as exc:
        raise UserError(f"benchmarks need pytest and pytest-benchmark ({exc.name} is missing): {INSTALL}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / BENCHMARKS_JSON
    # pytest-benchmark writes outside the tree while it runs, so the commit it records is not
    # marked dirty by this very run's output; the previous numbers go either way
    with tempfile.TemporaryDirectory(prefix="ddr-eval-bench-") as scratch:
        fresh = Path(scratch) / BENCHMARKS_JSON
        code = int(pytest.main([str(bench_dir), f"--benchmark-json={fresh}", "-p", "no:cacheprovider",
                                f"--rootdir={bench_dir.parent}", *pytest_args]))
        if not fresh.is_file():
            json_path.unlink(missing_ok=True)  # a failed run must not leave the previous run's numbers behind
            raise UserError(f"pytest exited with {code} before any benchmark ran (no {json_path})")
        shutil.copyfile(fresh, json_path)
    return code, write_summary(json_path, out_dir / SUMMARY_MD)


def write_summary(json_path: Path | str, summary_path: Path | str) -> Path:
    """Render ``summary.md`` from a pytest-benchmark JSON written by the benchmarks in ``bench/``."""
    document = json.loads(Path(json_path).read_text())
    summary_path = Path(summary_path)
    summary_path.write_text(summary_markdown(document))
    return summary_path


def summary_markdown(document: dict[str, Any]) -> str:
    by_test: dict[str, list[dict[str, Any]]] = {}
    for bench in document.get("benchmarks", []):
        by_test.setdefault(bench["name"].split("[")[0], []).append(bench)
    lines = ["# ddr-eval benchmarks", "", *_header(document)]
    for title, test, render in SECTIONS:
        if test in by_test:
            lines += ["", f"## {title}", "", *render(by_test.pop(test))]
    if by_test:
        lines += ["", "## Other benchmarks", "", *_others([b for benches in by_test.values() for b in benches])]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- sections


def _header(document: dict[str, Any]) -> list[str]:
    machine = document.get("machine_info", {})
    commit = document.get("commit_info", {})
    cpu = machine.get("cpu", {})
    dirty = " (uncommitted changes)" if commit.get("dirty") else ""
    return [
        f"- when: {document.get('datetime', '?')}; commit {str(commit.get('id', '?'))[:12]}{dirty}",
        f"- machine: {cpu.get('brand_raw', machine.get('processor', '?'))}, {cpu.get('count', '?')} logical CPUs, "
        f"Python {machine.get('python_version', '?')}",
        "",
        "Machines here are shared and noisy: every comparison is a ratio of medians timed *alternately in "
        "the same run*; absolute times are for orientation only.",
    ]


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)  # numbers pre-formatted


def _status(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def _throughput(benches: list[dict[str, Any]]) -> list[str]:
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        bare_rate = info["patches"] / info["baseline_median_s"]
        rows.append([bench.get("param"), info.get("arch"), _number(info.get("patches_per_s")), _number(bare_rate),
                     _number(info.get("ratio")), _status(info.get("meets_target"))])
    return ["Harness (`extract_features`, deep tap + SR outputs) versus a bare `torch.inference_mode()` forward "
            "on the same 32x32 batches; ratio = harness throughput / bare throughput, target >= 0.9.", "",
            _table(rows, headers=["recipe", "arch", "patches/s harness", "patches/s bare", "ratio", "target met"])]


def _features_only(benches: list[dict[str, Any]]) -> list[str]:
    info = benches[0]["extra_info"]
    return [f"Flattened features without SR outputs stop the forward pass at the deep tap: "
            f"{_number(info.get('ratio'))}x the throughput of a full bare forward "
            f"({_number(info.get('patches_per_s'))} patches/s; target met: {_status(info.get('meets_target'))})."]


def _threads(benches: list[dict[str, Any]]) -> list[str]:
    info = benches[0]["extra_info"]
    return [f"The same extraction (srresnet-gr, {info.get('patches')} patches) on one torch thread runs at "
            f"{_number(info.get('ratio'))}x the speed of torch's default {info.get('default_threads')} threads "
            "(> 1: the extra threads cost more than they bring on this machine now)."]


def _gpu(benches: list[dict[str, Any]]) -> list[str]:
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        rows.append([bench["params"].get("name"), info.get("variant"), _number(info.get("patches_per_s")),
                     _number(info.get("device_only_patches_per_s")), _number(info.get("peak_memory_mib")),
                     _number(info.get("ratio")), _status(info.get("meets_target"))])
    return [_table(rows, headers=["recipe", "variant", "patches/s harness", "patches/s on device (CUDA events)",
                                  "peak MiB", "ratio", "target met"])]


def _srga(benches: list[dict[str, Any]]) -> list[str]:
    info = benches[0]["extra_info"]
    rows = [[_number(info.get("harness_value"), 12), _number(info.get("reference_value"), 12),
             _number(info.get("abs_difference")), f"{_number(info.get('ratio'))}x",
             _status(info.get("meets_target"))]]
    features = info.get("features")
    origin = (f" from {features[0]} x {features[1]} features (sklearn PCA as the authors' script, solver "
              f"{info.get('pca_solver')}, {_number(info.get('pca_seconds_per_set'))} s per set on both sides)"
              if features else "")
    return [f"SRGA steps 2–4 on two sets of {info['coefficients'][0]} x {info['coefficients'][1]} PCA coefficients"
            f"{origin}, versus a per-element reference of the published recipe; target: same value (features to "
            "index), >= 50x faster.", "",
            _table(rows, headers=["SRGA (harness)", "SRGA (reference)", "|difference|", "speed-up", "target met"])]


def _scaling(benches: list[dict[str, Any]]) -> list[str]:
    sizes = [point["n"] for point in benches[0]["extra_info"]["curve"]]
    rows = []
    for bench in benches:
        info = bench["extra_info"]
        exponent = info.get("time_exponent")
        met = None if exponent is None else exponent <= info.get("max_time_exponent", float("inf"))
        seconds = [_number(point["seconds"]) for point in info["curve"]]
        memory = [point.get(info.get("memory_measure", "traced_mib")) for point in info["curve"]]
        rows.append([info["phase"], _number(exponent), _number(info.get("raw_time_exponent")),
                     _number(info.get("max_time_exponent")), _status(met), _number(info.get("memory_exponent")),
                     *seconds, _number(memory[-1])])
    headers = ["phase", "time exponent", "raw", "bound", "within bound", "memory exponent",
               *[f"s @ {n}" for n in sizes], f"MiB @ {sizes[-1]}"]
    return ["Wall time and peak memory against the number of patches; exponents are log-log slopes "
            "(`time ~ N^a`) of time(N) / time(250) timed back to back (raw: of time(N) alone). Memory: "
            "tracemalloc peak (numpy), or the RSS high-water mark for extraction.", "",
            _table(rows, headers=headers)]


def _suite(benches: list[dict[str, Any]]) -> list[str]:
    info = benches[0]["extra_info"]
    lines = []
    if info.get("missing_models"):
        lines += [f"**Partial suite**: {len(info['missing_models'])} model(s) not trained yet and left out "
                  f"({', '.join(info['missing_models'])}); these timings are not the full suite's.", ""]
    rows = [["cold (empty feature cache)", _number(info.get("cold_s")), _number(info.get("cold_target_s")),
             _status(_within(info.get("cold_s"), info.get("cold_target_s"))), _phases(info.get("cold_phases"))],
            ["warm (cached features)", _number(info.get("warm_s")), _number(info.get("warm_target_s")),
             _status(_within(info.get("warm_s"), info.get("warm_target_s"))), _phases(info.get("warm_phases"))]]
    lines += [f"`suites/generalization.yaml` on {info.get('cpus')} CPUs with models: "
              f"{', '.join(info.get('models', []))}. Run + findings + report in-process; interpreter start-up "
              f"and imports take another {_number(info.get('startup_s'))} s.", "",
              _table(rows, headers=["run", "seconds", "target", "met", "phases (s)"])]
    per_metric = info.get("metric_seconds") or {}
    if per_metric:
        total = sum(per_metric.values()) or 1.0
        metric_rows = [[name, _number(seconds), f"{100 * seconds / total:.0f}%"]
                       for name, seconds in sorted(per_metric.items(), key=lambda kv: -kv[1])]
        lines += ["", f"Metric phase, each metric timed alone (t-SNE share: "
                      f"{100 * info.get('tsne_share_of_metrics', 0):.0f}%):", "",
                  _table(metric_rows, headers=["metric", "seconds", "share"])]
    return lines


def _suite_process(benches: list[dict[str, Any]]) -> list[str]:
    info = benches[0]["extra_info"]
    warm, ratio = info.get("process_warm_s"), info.get("cold_over_bare")
    rows = [["warm `ddr-eval run`", _number(warm), f"<= {_number(info.get('warm_target_s'))} s",
             _status(_within(warm, info.get("warm_target_s")))],
            ["cold `ddr-eval run`", _number(info.get("process_cold_s")),
             f"<= {_number(info.get('cold_target_ratio'))} x bare forward ({_number(info.get('bare_forward_s'))} s)",
             _status(_within(ratio, info.get("cold_target_ratio")))]]
    partial = (f" **Partial suite** (not trained yet: {', '.join(info['missing_models'])})."
               if info.get("missing_models") else "")
    default_alloc = info.get("bare_forward_default_allocator_s")
    allocator = (f" The bare forward runs in a fresh process with the allocator settings `ddr-eval` applies "
                 f"(`ddr_eval/core/process.py`); with glibc's defaults it takes {_number(default_alloc)} s."
                 if default_alloc is not None else "")
    bound = info.get("process_cold_cpu_bound_s")
    cpu = (f" CPU: the cold process used {_number(info.get('process_cold_cpu_s'))} CPU seconds (all threads), "
           f"so on {info.get('cpus')} CPUs no schedule finishes it in less than {_number(bound)} s "
           f"({_number(bound / info['bare_forward_s'])} x the bare forward, which used "
           f"{_number(info.get('bare_forward_cpu_s'))} CPU seconds)."
           if bound is not None and info.get("bare_forward_s") else "")
    return [f"Whole processes, command start to exit, on {info.get('cpus')} CPUs; bare forward = one "
            f"`inference_mode` forward of every (network, set) the suite's cells read.{allocator}{partial}{cpu}", "",
            _table(rows, headers=["run", "seconds", "target", "met"])]


def _within(value: float | None, target: float | None) -> bool | None:
    return None if value is None or target is None else value <= target


def _phases(phases: dict[str, float] | None) -> str:
    return ", ".join(f"{name} {value:.1f}" for name, value in (phases or {}).items() if name != "total")


def _efficiency(benches: list[dict[str, Any]]) -> list[str]:
    names = list(benches[0]["extra_info"]["columns"])
    rows = [[bench.get("param"), bench["extra_info"]["arch"],
             *[_efficiency_value(name, bench["extra_info"]["columns"].get(name)) for name in names]]
            for bench in benches]
    headers = [f"{name} ({EFFICIENCY_UNITS.get(name.split('[')[0], '')})".replace(" ()", "") for name in names]
    return ["Per zoo architecture on one LR patch: parameters; FLOPs = 2 x MACs of convolutions and matmuls "
            "(`torch.utils.flop_counter`); latency in ms per patch (median of 5 after 2 warm-up passes); "
            "peak memory in MiB (live tensors, torch MemTracker on CPU; `max_memory_allocated` on CUDA).", "",
            _table(rows, headers=["recipe", "arch", *headers])]


EFFICIENCY_UNITS = {"params": "count", "flops": "GFLOPs", "latency": "ms", "peak_memory": "MiB"}


def _efficiency_value(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    kind = name.split("[")[0]
    if kind == "params":
        return f"{int(value):,}"
    if kind == "flops":
        return f"{value / 1e9:.3f}"
    return f"{value:.3g}"


def _training_budget(benches: list[dict[str, Any]]) -> list[str]:
    rows = [[b["extra_info"]["recipe"], b["extra_info"]["iterations"], _number(b["extra_info"]["step_s"]),
             _number(b["extra_info"]["projected_train_s"] / 60),
             _status(b["extra_info"]["projected_train_s"] <= b["extra_info"]["budget_s"])] for b in benches]
    return ["Each recipe's steps x its median step time, measured here (budget: 20 min on this machine's "
            f"{benches[0]['extra_info'].get('threads')} torch threads).", "",
            _table(rows, headers=["recipe", "steps", "s/step", "projected min", "within budget"])]


def _x4_suite(benches: list[dict[str, Any]]) -> list[str]:
    info = benches[0]["extra_info"]
    return [f"`ddr-eval run` cold (empty caches), whole process, on {info.get('cpus')} CPUs: "
            f"`generalization.yaml` (x2) {_number(info.get('x2_cold_s'))} s, `generalization-x4.yaml` "
            f"{_number(info.get('x4_cold_s'))} s (target {_number(info.get('x4_cold_target_s'))} s: "
            f"{_status(_within(info.get('x4_cold_s'), info.get('x4_cold_target_s')))})."]


def _others(benches: list[dict[str, Any]]) -> list[str]:
    """Benchmarks this summary has no section for: their median and their scalar ``extra_info``."""
    rows = []
    for bench in benches:
        info = bench.get("extra_info", {})
        scalars = ", ".join(f"{key}={_number(value)}" for key, value in info.items()
                            if isinstance(value, (int, float, str, bool)) or value is None)
        rows.append([bench["name"], _number(bench.get("stats", {}).get("median")), scalars])
    return [_table(rows, headers=["benchmark", "median s", "extra_info"])]


SECTIONS = [
    ("Feature-extraction throughput", "test_extraction_throughput_vs_bare_forward", _throughput),
    ("Features without SR outputs", "test_features_only_skips_the_upsampling_tail", _features_only),
    ("Torch threads", "test_extraction_on_one_thread_vs_torch_default", _threads),
    ("GPU variants", "test_gpu_extraction_throughput", _gpu),
    ("SRGA: vectorised versus per-element reference", "test_srga_vectorised_vs_per_element_reference", _srga),
    ("Scaling with the number of patches", "test_scaling", _scaling),
    ("End-to-end suite", "test_generalization_suite_cold_and_warm", _suite),
    ("End-to-end suite as processes", "test_generalization_suite_whole_process", _suite_process),
    ("Efficiency of the zoo architectures", "test_efficiency_profile", _efficiency),
    ("Public x4 shapes: extraction throughput", "test_public_shape_extraction_vs_bare_forward", _throughput),
    ("The x4 main job beside the x2 one", "test_x4_suite_cold_beside_x2", _x4_suite),
    ("Training budget per recipe", "test_recipe_fits_the_training_budget", _training_budget),
]
