"""What users run on top of a suite's results: compare, identify, regression check, the training monitor, robustness."""
