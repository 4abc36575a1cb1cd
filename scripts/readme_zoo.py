"""Write the measured columns of the README's zoo tables from ``model_zoo/zoo.yaml``.

Each zoo table row reads ``| `name` | what differs | steps | PSNR | bicubic | SSIM | bicubic |``;
the last four cells are the held-out numbers ``ddr-eval zoo evaluate`` stored for that entry, so
this script rewrites them and ``tests/test_readme.py`` fails when README and zoo.yaml disagree.

    python scripts/readme_zoo.py          # rewrite the numbers in README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `(?P<name>[a-z0-9@.-]+)` \|(?P<what>[^|]*)\|(?P<steps>[^|]*)\|(?P<rest>.*)$")


def _metrics() -> dict[str, dict]:
    zoo = yaml.safe_load((ROOT / "model_zoo" / "zoo.yaml").read_text())
    return {entry["name"]: entry.get("metrics") or {} for entry in zoo["models"]}


def render(text: str) -> str:
    metrics, lines = _metrics(), []
    for line in text.splitlines():
        match = ROW.match(line)
        if match and match["name"] in metrics and "psnr" in metrics[match["name"]]:
            m = metrics[match["name"]]
            cells = [f"{m['psnr']:.2f}", f"{m['bicubic_psnr']:.2f}", f"{m['ssim']:.3f}", f"{m['bicubic_ssim']:.3f}"]
            line = f"| `{match['name']}` |{match['what']}|{match['steps']}| " + " | ".join(cells) + " |"
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def main() -> int:
    readme = ROOT / "README.md"
    readme.write_text(render(readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
