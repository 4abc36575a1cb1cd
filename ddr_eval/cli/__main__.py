"""``python -m ddr_eval.cli``: the same as the ``ddr-eval`` command."""

from ddr_eval.cli import main

main()
