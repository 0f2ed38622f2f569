"""Render an `rlhf report` page in headless Chromium and check that it rendered.

    python scripts/render_report.py RUN_DIR_OR_HTML [--png OUT.png] [--chromium /usr/bin/chromium]

Given a run directory it first writes RUN_DIR/report.html (`rlhf report`); given an .html file it
renders that. It takes a screenshot and dumps the DOM, then checks: Chromium exited cleanly, the
screenshot is a PNG that is not one flat colour, and the DOM holds every section heading of the
page. Exits 1 (with the reason) when a check fails, 2 when Chromium is missing. Chromium runs with
a fresh profile and no network features, so the check also shows the page needs nothing from outside.
Install Chromium on Debian or Ubuntu with `apt-get install chromium`.
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def chromium(binary: str, args: list[str], timeout: float, height: int = 2400) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--window-size=1280,{height}", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


def headings(page: str) -> list[str]:
    """Text of every h1-h3 in the page (tags inside a heading dropped, entities decoded)."""
    found = re.findall(r"<h[123][^>]*>(.*?)</h[123]>", page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in found]


def check_png(path: Path) -> str:
    """A short description of the screenshot; raises ValueError when it is missing or blank."""
    from PIL import Image

    if not path.is_file() or path.stat().st_size == 0:
        raise ValueError(f"{path}: no screenshot was written")
    with Image.open(path) as image:
        image = image.convert("RGB")
        colours = image.getcolors(maxcolors=1 << 20)
        n = len(colours) if colours is not None else 1 << 20
        # A page that failed to render is one flat colour (white or Chromium's grey error page).
        if n < 16:
            raise ValueError(f"{path}: screenshot is blank ({n} colours)")
        return f"{image.width}x{image.height} px, {n} colours, {path.stat().st_size} bytes"


def render(page_path: Path, png: Path, binary: str, timeout: float, height: int = 2400) -> list[str]:
    """Screenshot and DOM checks; returns the problems found (empty when the page rendered)."""
    url = page_path.resolve().as_uri()
    problems = []
    png.unlink(missing_ok=True)  # a stale screenshot must not pass for this one
    shot = chromium(binary, [f"--screenshot={png.resolve()}", url], timeout, height)
    if shot.returncode != 0:
        problems.append(f"chromium --screenshot exited {shot.returncode}: {shot.stderr.strip()[-2000:]}")
    try:
        print(f"screenshot {png}: {check_png(png)}")
    except ValueError as e:
        problems.append(str(e))
    dom = chromium(binary, ["--dump-dom", url], timeout)
    if dom.returncode != 0:
        problems.append(f"chromium --dump-dom exited {dom.returncode}: {dom.stderr.strip()[-2000:]}")
    expected = headings(page_path.read_text(encoding="utf-8"))
    found = headings(dom.stdout)
    missing = [h for h in expected if h not in found]
    if not expected:
        problems.append(f"{page_path}: the page has no headings; is it an rlhf report?")
    elif missing:
        problems.append(
            f"the rendered DOM lacks {len(missing)} of {len(expected)} headings, e.g. {missing[:5]}"
        )
    else:
        sections = [h for h in expected if h.startswith(("Overview", "Stage"))]
        print(f"DOM holds all {len(expected)} headings; sections: {', '.join(sections)}")
    if re.search(r"<script\b", dom.stdout, re.I):
        problems.append("the rendered DOM holds a <script> element (text from the run was not escaped)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="a run directory (the report is written first) or a report .html file")
    parser.add_argument("--png", help="screenshot path (default: beside the page, .png)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary")
    parser.add_argument("--height", type=int, default=2400, help="screenshot height in pixels (width 1280)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per Chromium run")
    args = parser.parse_args(argv)

    if not Path(args.chromium).exists():
        print(
            f"error: {args.chromium} not found; install it (apt-get install chromium) or pass --chromium",
            file=sys.stderr,
        )
        return 2
    target = Path(args.target)
    if target.is_dir():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from rlhf.report import write_report

        page = write_report(target)
        print(f"report written to {page}")
    elif target.is_file():
        page = target
    else:
        print(f"error: {target}: no such file or directory", file=sys.stderr)
        return 2
    png = Path(args.png) if args.png else page.with_suffix(".png")
    try:
        problems = render(page, png, args.chromium, args.timeout, args.height)
    except subprocess.TimeoutExpired:
        problems = [f"chromium did not finish within {args.timeout:.0f} s"]
    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    if not problems:
        print(f"{page} rendered in headless Chromium")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
