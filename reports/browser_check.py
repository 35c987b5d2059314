"""Open a self-contained HTML report in headless Chromium at a 1280 px wide viewport and check that it loads cleanly,
every figure renders, the Summary is its first section, and no table is wider than the page."""

# Driver: Playwright's Python package, pointed at Debian's /usr/bin/chromium (its bundled browsers are never
# downloaded). Console messages, uncaught page errors and network requests arrive as callbacks registered before
# navigation, so nothing emitted while the page loads is missed, and a full-page screenshot is one call. Selenium
# would need chromedriver's legacy ``get_log("browser")`` (a non-W3C extension), parsing of the performance log's
# DevTools JSON to see requests, a raw DevTools call for a full-page screenshot in Chrome, and a chromedriver whose
# version matches the browser: more code and more to go wrong.

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium; the environment variable ``PAIRBENCH_CHROMIUM`` names another binary."""

CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_flags(euid: int | None = None) -> list[str]:
    """Chromium's flags. Its sandbox cannot start as root (CI and containers run as root here), so it is turned
    off there only; any other user keeps it."""
    euid = os.geteuid() if euid is None else euid
    return [*CHROMIUM_FLAGS, *(["--no-sandbox"] if euid == 0 else [])]


"""Flags this machine needs; the fresh ``--user-data-dir`` is given as Playwright's persistent-context directory."""

_CONSOLE_ERROR_TYPES = ("error", "assert")
_NOT_NETWORK = ("data:", "blob:", "about:")

# For each <img>: whether it decoded, and a name for it (alt text, else the start of its src).
_IMAGES_JS = """() => Array.from(document.images).map(img => ({
    ok: img.complete && img.naturalWidth > 0,
    name: img.alt || (img.getAttribute('src') || '').slice(0, 60),
}))"""


# The page's section titles in order, and every table wider than the viewport or than the box that holds it (it would
# scroll or be cut), named by the heading above it, with its width.
_LAYOUT_JS = """() => {
    const viewport = document.documentElement.clientWidth;
    const heading = (table) => {
        for (let node = table; node && node !== document.body; node = node.parentElement) {
            for (let el = node.previousElementSibling; el; el = el.previousElementSibling) {
                if (/^H[1-3]$/.test(el.tagName)) return el.textContent.trim();
            }
        }
        return 'a table';
    };
    const wide = [];
    for (const table of document.querySelectorAll('table')) {
        const box = table.parentElement;
        const right = table.getBoundingClientRect().right;
        if (right > viewport + 0.5 || table.scrollWidth > box.clientWidth + 0.5) {
            wide.push(`${heading(table)} (${Math.ceil(table.scrollWidth)} px)`);
        }
    }
    return {
        viewport: viewport,
        page: document.documentElement.scrollWidth,
        sections: Array.from(document.querySelectorAll('h2')).map(h => h.textContent.trim()),
        wide: wide,
    };
}"""
VIEWPORT = {"width": 1280, "height": 800}
"""The viewport a report is checked at: a laptop's browser window."""
FIRST_SECTION = "Summary"


class BrowserUnavailable(Exception):
    """Headless Chromium or the Playwright Python package is missing or does not start."""


@dataclass(frozen=True)
class BrowserCheck:
    """What headless Chromium saw when it opened a report.

    Attributes
    ----------
    title : str
        The document title.
    console_errors : list of str
        Console messages of level error (including failed ``console.assert``) and uncaught page errors.
    images : int
        Number of ``<img>`` elements.
    broken_images : list of str
        Alt text (or the start of ``src``) of every ``<img>`` that did not decode.
    failed_requests : list of str
        Every network request the page attempted, with the failure reason where it failed; a self-contained report
        makes none (``data:`` URLs and the page's own ``file://`` URL are not counted).
    sections : list of str
        The titles of the page's sections (``<h2>``), in order.
    wide_tables : list of str
        Every table wider than the viewport or than the box that holds it, named by the heading above it, with its
        width in CSS pixels.
    viewport_width, page_width : int
        The viewport's width and the page's (wider than the viewport: the page scrolls sideways).
    """

    title: str
    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    wide_tables: list[str] = field(default_factory=list)
    viewport_width: int = VIEWPORT["width"]
    page_width: int = 0

    @property
    def summary_first(self) -> bool:
        """True when the first section is the Summary."""
        return bool(self.sections) and self.sections[0] == FIRST_SECTION

    @property
    def fits(self) -> bool:
        """True when no table, and not the page, is wider than the viewport."""
        return not self.wide_tables and self.page_width <= self.viewport_width

    @property
    def ok(self) -> bool:
        """True when there are no console errors, no broken images, no requests, at least one image, the Summary
        first, and nothing wider than the viewport."""
        clean = not self.console_errors and not self.broken_images and not self.failed_requests and self.images > 0
        return clean and self.summary_first and self.fits


def _chromium() -> str:
    """Return the Chromium binary to use, or raise `BrowserUnavailable` when it is absent."""
    binary = os.environ.get("PAIRBENCH_CHROMIUM") or CHROMIUM
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise BrowserUnavailable(f"Chromium is not installed at {binary}: install it with `apt-get install chromium`.")
    return binary


def check_html(path: str | Path, screenshot: Path | None = None, timeout_s: float = 60) -> BrowserCheck:
    """Open an HTML file in headless Chromium and report console errors, images and network requests.

    Parameters
    ----------
    path : str or Path
        The HTML file.
    screenshot : Path, optional
        Where to write a full-page PNG screenshot.
    timeout_s : float
        Limit, in seconds, for starting the browser and for loading the page.

    Returns
    -------
    BrowserCheck
        What the browser saw once the page's load event had fired.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    BrowserUnavailable
        When Chromium or the Playwright Python package is missing, or the browser does not start.
    """
    page_path = Path(path).resolve()
    if not page_path.is_file():
        raise FileNotFoundError(f"no such HTML file: {page_path}")
    page_url = page_path.as_uri()
    binary = _chromium()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable(
            "The Python package playwright is not installed: install it with `pip install playwright` "
            "(never `playwright install`; the system Chromium is used)."
        ) from None

    timeout_ms = timeout_s * 1000
    console_errors: list[str] = []
    requests: list[str] = []
    failures: dict[str, str] = {}

    def on_console(msg) -> None:
        if msg.type in _CONSOLE_ERROR_TYPES:
            where = msg.location  # lineNumber is 0-based; only a line of the report itself is worth naming
            own = where.get("url") == page_url and "lineNumber" in where
            line = f" (line {where['lineNumber'] + 1})" if own else ""
            console_errors.append(f"console.{msg.type}: {msg.text}{line}")

    def on_request(request) -> None:
        url = request.url
        if url != page_url and not url.startswith(_NOT_NETWORK):
            requests.append(url)

    def on_request_failed(request) -> None:
        failures[request.url] = request.failure or "failed"

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="pairbench-chromium-") as profile:
        try:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=binary,
                headless=True,
                args=chromium_flags(),
                viewport=VIEWPORT,
                timeout=timeout_ms,
            )
        except PlaywrightError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrowserUnavailable(f"Chromium at {binary} did not start under Playwright: {first}") from exc
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda exc: console_errors.append(f"uncaught {exc.name}: {exc.message}"))
            page.on("request", on_request)
            page.on("requestfailed", on_request_failed)
            page.goto(page_url, wait_until="load", timeout=timeout_ms)
            images = page.evaluate(_IMAGES_JS)
            layout = page.evaluate(_LAYOUT_JS)
            title = page.title()
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True, timeout=timeout_ms)
        finally:
            context.close()

    return BrowserCheck(
        title=title,
        console_errors=console_errors,
        images=len(images),
        broken_images=[img["name"] for img in images if not img["ok"]],
        failed_requests=[f"{url} ({failures[url]})" if url in failures else url for url in requests],
        sections=layout["sections"],
        wide_tables=layout["wide"],
        viewport_width=layout["viewport"],
        page_width=layout["page"],
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: check one report; exit 0 when ok, 1 when not, 2 when the browser is unavailable."""
    parser = argparse.ArgumentParser(
        prog="python -m reports.browser_check",
        description="Open a pairbench HTML report in headless Chromium at 1280 px: no console errors, every figure "
        "renders, the Summary first, no table wider than the page.",
    )
    parser.add_argument("report", type=Path, help="the HTML report")
    parser.add_argument("--screenshot", type=Path, default=None, help="write a full-page PNG screenshot here")
    parser.add_argument("--timeout", type=float, default=60, help="seconds for browser start and page load")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"no such file: {args.report}")
    try:
        result = check_html(args.report, screenshot=args.screenshot, timeout_s=args.timeout)
    except BrowserUnavailable as exc:
        print(f"browser unavailable: {exc}", file=sys.stderr)
        return 2
    print(f"{args.report}: {'OK' if result.ok else 'NOT OK'}  title={result.title!r}")
    print(f"  images: {result.images}, broken: {len(result.broken_images)}")
    for name in result.broken_images:
        print(f"    broken image: {name}")
    print(f"  console errors: {len(result.console_errors)}")
    for message in result.console_errors:
        print(f"    {message}")
    print(f"  network requests: {len(result.failed_requests)}")
    for url in result.failed_requests:
        print(f"    {url}")
    if result.images == 0:
        print("  no <img> elements: a report should embed at least one figure")
    first = result.sections[0] if result.sections else "none"
    print(f"  first section: {first}" + ("" if result.summary_first else f" (the {FIRST_SECTION} should be)"))
    print(f"  at {result.viewport_width} px: page {result.page_width} px, tables wider: {len(result.wide_tables)}")
    for name in result.wide_tables:
        print(f"    wider than the page: {name}")
    if args.screenshot is not None:
        print(f"  screenshot: {args.screenshot}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
