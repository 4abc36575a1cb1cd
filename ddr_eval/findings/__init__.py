"""The DDR paper's findings, each a registered class computing a typed result with a plain verdict.

A suite may carry a ``findings:`` section (``suites/paper.yaml`` does). After the reduce
step, each finding it names is computed from the run's own features and metric rows, on the
subsets of models, layers and degradation sets it names, and compared with what the paper
reports. Intervals: every CHI here carries the patch bootstrap ``[low, high]`` and the cluster
bootstrap over source images (``{low, high}``, stratified by degradation set, with the number of
images behind it); verdicts that compare intervals use the image one. A verdict
(:class:`Verdict`) is one of ``reproduced``, ``partly reproduced`` (the direction holds but the
effect is smaller than reported, or holds for some pairs only) and ``not reproduced``; the
numbers stay whatever they are.

One module per finding, imported here in the paper's order (the order reports list them in);
a new finding is one module with a ``@register_finding`` class plus its import (base.py says
what the class declares). ``findings.include`` names other suites whose findings follow this
suite's; the caller (``ddr_eval.api.Results``) runs them and labels each with :func:`suite_origin`.
Rendering (markdown, HTML sections, JSON) is ``ddr_eval.report``'s.
"""

from ddr_eval.findings.base import (
    FINDINGS,
    Cell,
    Estimate,
    Finding,
    FindingResult,
    Rounded,
    Verdict,
    compute_findings,
    register_finding,
    suite_origin,
    unregister_finding,
)
from ddr_eval.findings.context import FindingContext

# the paper's findings, in the paper's order
from ddr_eval.findings import global_residual  # noqa: E402,I001  (1)
from ddr_eval.findings import adversarial  # noqa: E402  (2)
from ddr_eval.findings import training  # noqa: E402  (3)
from ddr_eval.findings import sr_vs_classification  # noqa: E402  (4)
from ddr_eval.findings import spectrum  # noqa: E402  (5)
from ddr_eval.findings import generalization  # noqa: E402  (6)
from ddr_eval.findings import identification  # noqa: E402  (7)
from ddr_eval.findings import blind_sr  # noqa: E402  (8)
from ddr_eval.findings import cincgan  # noqa: E402  (9)

__all__ = ["FINDINGS", "Cell", "Estimate", "Finding", "FindingContext", "FindingResult", "Rounded", "Verdict",
           "compute_findings", "register_finding", "suite_origin", "unregister_finding",
           "global_residual", "adversarial", "training", "sr_vs_classification", "spectrum", "generalization",
           "identification", "blind_sr", "cincgan"]
