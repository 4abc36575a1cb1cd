"""Benchmark tooling for ddr-eval, kept out of the library package ``ddr_eval``.

It measures the library (its own dependency runs one way: this package imports ``ddr_eval``,
``ddr_eval`` never imports it, except ``ddr-eval bench``, which imports it inside the command):

* :mod:`ddr_eval_bench.runner`: ``ddr-eval bench``, the pytest-benchmark files in ``bench/`` and
  the ``summary.md`` rendered from their JSON;
* :mod:`ddr_eval_bench.gpu`: ``ddr-eval bench --gpu``, the CUDA throughput/memory matrix.

It ships in the same distribution as ``ddr_eval`` (``[tool.setuptools.packages.find]``
includes ``ddr_eval*``).
"""
