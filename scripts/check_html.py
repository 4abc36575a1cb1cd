#!/usr/bin/env python3
"""Check that a ddr-eval ``report.html`` renders in headless Chromium and shows every plot.

Needs Debian's ``chromium`` package (as root)::

    apt-get update && apt-get install -y chromium

Usage::

    python scripts/check_html.py reports/smoke/report.html [--screenshot shot.png]

Three checks, each of which has caught a different kind of broken report:

1. *static*: every ``<img>`` is an inline ``data:image/png`` URI and nothing references an
   external resource (the report must open offline); the number of images matches the
   ``ddr-eval:images`` meta tag the writer recorded;
2. *rendered*: ``chromium --headless --dump-dom`` loads the page; the report's inline
   script marks ``<body data-images-loaded="true">`` only when every image decoded
   (``naturalWidth > 0``), and records how many images the browser saw;
   in a window ``--width`` pixels wide (1400), the leaderboard must show every column without
   scrolling sideways (the script records ``data-board-overflow``; reports written before it
   existed are not checked for it);
3. *screenshot* (optional): a full-height PNG to look at.

Exit codes: 0 all good, 1 a check failed (reasons on stderr), 2 bad input or no chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio")
IMAGES_META = "ddr-eval:images"


class _Scan(HTMLParser):
    """Collects <img> sources, external references, <body> attributes and the images meta tag."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.external: list[str] = []
        self.body: dict[str, str] = {}
        self.expected_images: int | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "body":
            self.body = attrs
        if tag == "meta" and attrs.get("name") == IMAGES_META:
            self.expected_images = int(attrs.get("content", "-1"))
        for name in ("src", "href"):
            value = attrs.get(name, "")
            if value and not value.startswith(("data:", "#")):
                self.external.append(f"<{tag} {name}={value[:80]!r}>")


def scan(text: str) -> _Scan:
    parser = _Scan()
    parser.feed(text)
    parser.close()
    return parser


@dataclass
class HtmlCheck:
    problems: list[str] = field(default_factory=list)
    images: int = 0
    board_overflow: int | None = None  # pixels the leaderboard scrolls sideways; None: not recorded

    @property
    def ok(self) -> bool:
        return not self.problems


def find_browser(name: str | None = None) -> str | None:
    return shutil.which(name) if name else next((p for b in BROWSERS if (p := shutil.which(b))), None)


def _chromium(browser: str, url: str, *extra: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ddr-eval-chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def check_static(text: str, result: HtmlCheck) -> None:
    page = scan(text)
    result.images = len(page.images)
    if page.expected_images is None:
        result.problems.append(f"no <meta name={IMAGES_META!r}>: not a ddr-eval report")
    elif page.expected_images != len(page.images):
        result.problems.append(f"{len(page.images)} <img> tags but the writer embedded {page.expected_images}")
    not_inline = [s[:60] for s in page.images if not s.startswith("data:image/png;base64,")]
    if not_inline:
        result.problems.append(f"{len(not_inline)} images are not inline PNG data URIs, e.g. {not_inline[0]!r}")
    if page.external:
        result.problems.append(f"external references (the report must open offline): {page.external[:3]}")


def check_rendered(browser: str, path: Path, result: HtmlCheck, timeout: float, width: int = 1400) -> None:
    run = _chromium(browser, path.resolve().as_uri(), "--dump-dom", f"--window-size={width},900", timeout=timeout)
    if run.returncode != 0 or "<body" not in run.stdout:
        result.problems.append(f"chromium --dump-dom failed (exit {run.returncode}): {run.stderr.strip()[-300:]}")
        return
    body = scan(run.stdout).body
    total, decoded = body.get("data-images-total"), body.get("data-images-decoded")
    if body.get("data-images-loaded") != "true":
        result.problems.append(f"not every image decoded in chromium: {decoded} of {total} "
                               "(or the page's load script did not run)")
    if total is not None and int(total) != result.images:
        result.problems.append(f"chromium saw {total} images, the file has {result.images}")
    overflow = body.get("data-board-overflow")
    result.board_overflow = int(overflow) if overflow else None
    if result.board_overflow:
        result.problems.append(f"the leaderboard is {overflow} px wider than the page at {width} px: "
                               "columns scroll out of view")


def screenshot(browser: str, path: Path, out: Path, timeout: float, width: int = 1200, height: int = 3000) -> None:
    run = _chromium(browser, path.resolve().as_uri(), f"--screenshot={out.resolve()}",
                    f"--window-size={width},{height}", timeout=timeout)
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium --screenshot failed (exit {run.returncode}): {run.stderr.strip()[-300:]}")


def check_report_html(path: Path, browser: str, shot: Path | None = None, timeout: float = 120,
                      width: int = 1400) -> HtmlCheck:
    result = HtmlCheck()
    check_static(path.read_text(encoding="utf-8"), result)
    check_rendered(browser, path, result, timeout, width)
    if shot is not None:
        try:
            screenshot(browser, path, shot, timeout, width=width)
        except RuntimeError as exc:
            result.problems.append(str(exc))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="report.html to check")
    parser.add_argument("--screenshot", type=Path, help="also write a full-page PNG here")
    parser.add_argument("--browser", help=f"browser binary (default: first of {', '.join(BROWSERS)} on PATH)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per chromium call")
    parser.add_argument("--width", type=int, default=1400, help="window width the leaderboard must fit (pixels)")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"check_html: {args.html} does not exist", file=sys.stderr)
        return 2
    browser = find_browser(args.browser)
    if browser is None:
        print("check_html: no chromium found; install it with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    result = check_report_html(args.html, browser, args.screenshot, args.timeout, args.width)
    for problem in result.problems:
        print(f"check_html: {args.html}: {problem}", file=sys.stderr)
    if result.ok:
        fits = f", leaderboard fits {args.width} px" if result.board_overflow == 0 else ""
        print(f"{args.html}: renders in {Path(browser).name}, {result.images} images decoded{fits}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
