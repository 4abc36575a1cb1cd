"""Render the README's "What DDR looks like" table from the committed findings (x2 and x4 side by side).

The README states verdicts the code computed: this script writes the table between the
``<!-- findings:start -->`` / ``<!-- findings:end -->`` markers from ``reports/paper/findings.json``
and ``reports/paper-x4/findings.json``, and ``tests/test_readme.py`` fails when the two disagree.
A finding computed by an included suite (``findings.include``; its ``suite`` in findings.json)
names that suite beside its title; a scale whose report lacks a finding shows "—".

    python scripts/readme_findings.py          # rewrite the table in README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = {"x2": ROOT / "reports" / "paper" / "findings.json", "x4": ROOT / "reports" / "paper-x4" / "findings.json"}
START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(reports: dict[str, Path] = REPORTS) -> str:
    by_scale = {scale: {f["key"]: f for f in json.loads(path.read_text())} for scale, path in reports.items()}
    keys: list[str] = []
    for findings in by_scale.values():
        keys += [k for k in findings if k not in keys]
    scales = list(by_scale)
    header = ["#", "finding", "expected", *(f"{s} verdict" for s in scales), *(f"{s} measured" for s in scales)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for number, key in enumerate(keys, 1):
        first = next(by_scale[s][key] for s in scales if key in by_scale[s])
        origins = list(dict.fromkeys(by_scale[s][key]["suite"]["name"] for s in scales
                                     if key in by_scale[s] and by_scale[s][key].get("suite")))
        title = first["title"] + "".join(f" (suite `{name}`)" for name in origins)
        verdicts = [f"**{by_scale[s][key]['verdict']}**" if key in by_scale[s] else "—" for s in scales]
        measured = [_cell(by_scale[s][key]["summary"]) if key in by_scale[s] else "—" for s in scales]
        lines.append("| " + " | ".join([str(number), _cell(title), _cell(first["expected"]),
                                         *verdicts, *measured]) + " |")
    return "\n".join(lines)


def block(text: str, start: str = START, end: str = END) -> str:
    """What README holds between the ``start`` and ``end`` markers."""
    first, last = text.index(start) + len(start), text.index(end)
    return text[first:last].strip()


def update(readme: Path = ROOT / "README.md", content=None, start: str = START, end: str = END) -> bool:
    """Rewrite README between the markers with ``content`` (default: this table); True if it changed."""
    text = readme.read_text()
    new = text[: text.index(start) + len(start)] + "\n" + (content or render()) + "\n" + text[text.index(end):]
    readme.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = update()
    print("README.md findings table " + ("rewritten" if changed else "already current"))
    sys.exit(0)
