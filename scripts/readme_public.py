"""Render the README's "DDR in released networks" table from the committed public-x4 report.

The numbers are finding 4's per-layer CHI (``reports/public-x4/findings.json``: the
``sr_vs_classification`` finding's ``numbers.curves``) and the verdicts of findings 4 and 6
computed there; the script writes them between ``<!-- public:start -->`` / ``<!-- public:end -->``
and ``tests/test_readme.py`` fails when README and report disagree.

    python scripts/readme_public.py          # rewrite the table in README.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readme_findings  # noqa: E402  (the marker-block helpers, shared with the findings table)

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "public-x4" / "findings.json"
PROBE = ROOT / "model_zoo" / "probes" / "public-probe.json"
START, END = "<!-- public:start -->", "<!-- public:end -->"
BLOCK = re.compile(r"^block(\d+)$")


def _blocks(curve: list) -> list:
    return sorted((point for point in curve if BLOCK.match(point[0])), key=lambda p: int(BLOCK.match(p[0]).group(1)))


def _pair(point) -> str:
    return f"{point[1]:.1f} / {point[2]:.1f}" if point else "—"


def probe_line(probe: Path = PROBE) -> str:
    """What the shipped public probe chose and whether it beats the image-statistics baseline on the test split."""
    meta = json.loads(probe.read_text())
    baselines = [c for c in meta["candidates"] if c.get("role") == "baseline"]
    baseline = max(baselines, key=lambda c: c["cv_accuracy"])  # chosen the way the DDR probe is: by training-split CV
    verdict = "beats" if meta["test_accuracy"] > baseline["test_accuracy"] else "does not beat"
    return (f"- **Shipped probe** (`model_zoo/probes/{probe.stem}.npz`, `ddr-eval identify --probe {probe.stem}`): "
            f"{meta['model']} / {', '.join(meta['layers'])} / {meta['pooling']} / {meta['classifier']}, chosen among "
            f"{len(meta['candidates']) - len(baselines)} DDR candidates by {meta['cv_folds']}-fold cross-validation on the "
            f"training split ({meta['cv_accuracy']:.3f}); on the {meta['test_patches']} test patches it scores "
            f"{meta['test_accuracy']:.3f} (chance {meta['chance']:.3f}) and {verdict} the image-statistics probe chosen "
            f"the same way ({baseline['probe']}: {baseline['cv_accuracy']:.3f} cross-validated, "
            f"{baseline['test_accuracy']:.3f} on the test split).")


def render(report: Path = REPORT) -> str:
    findings = {f["key"]: f for f in json.loads(report.read_text())}
    content = findings["sr_vs_classification"]
    curves = content["numbers"]["curves"]
    kinds = {row["model"]: row["kind"] for row in content["table"]}
    lines = ["| model | kind | blocks | CHI degradation / content: first block | middle block | deep tap | "
             "degradation / content at the deep tap |", "|---|---|---|---|---|---|---|"]
    for model, curve in curves.items():
        blocks = _blocks(curve)
        deep = next((p for p in curve if p[0] == "deep"), None)
        middle = blocks[len(blocks) // 2] if blocks else None
        ratio = f"{deep[1] / max(deep[2], 1e-12):.2f}" if deep else "—"
        lines.append(f"| `{model}` | {kinds.get(model, '')} | {len(blocks)} | {_pair(blocks[0] if blocks else None)} | "
                     f"{_pair(middle)}{f' ({middle[0]})' if middle else ''} | {_pair(deep)} | {ratio} |")
    lines.append("")
    for key in ("sr_vs_classification", "generalization"):
        if key in findings:
            finding = findings[key]
            lines.append(f"- **{finding['title']}**: {finding['verdict']}. {finding['summary']}")
    if PROBE.is_file():
        lines.append(probe_line())
    return "\n".join(lines)


def block(text: str) -> str:
    return readme_findings.block(text, START, END)


def update(readme: Path = ROOT / "README.md") -> bool:
    return readme_findings.update(readme, render(), START, END)


if __name__ == "__main__":
    changed = update()
    print("README.md public-networks table " + ("rewritten" if changed else "already current"))
    sys.exit(0)
