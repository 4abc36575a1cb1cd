"""``reports/bench/summary.md`` sections for the SRGA and whole-process suite benchmarks."""

from ddr_eval_bench.runner import summary_markdown


def test_summary_renders_srga_origin_and_the_whole_process_targets():
    document = {"benchmarks": [
        {"name": "test_srga_vectorised_vs_per_element_reference", "extra_info": {
            "coefficients": [800, 300], "features": [800, 65536], "pca_solver": "randomized",
            "pca_seconds_per_set": 4.2, "harness_value": 1.25, "reference_value": 1.25, "abs_difference": 0.0,
            "ratio": 120.0, "meets_target": True}},
        {"name": "test_generalization_suite_whole_process", "extra_info": {
            "process_cold_s": 40.0, "process_warm_s": 3.5, "bare_forward_s": 20.0, "cold_over_bare": 2.0,
            "warm_target_s": 3.0, "cold_target_ratio": 1.4, "cpus": 2, "missing_models": ["srcnn"]}},
    ]}
    text = summary_markdown(document)
    assert "from 800 x 65536 features" in text and "solver randomized" in text
    assert "## End-to-end suite as processes" in text and "Partial suite" in text and "srcnn" in text
    warm, cold = [line for line in text.splitlines() if "`ddr-eval run`" in line and line.startswith("|")]
    assert warm.rstrip().endswith("**no** |") and cold.rstrip().endswith("**no** |")  # 3.5 > 3, 2.0 > 1.4
