"""Headless-Chromium check of HTML reports: clean pages pass; broken figures, script errors and requests are caught."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path

import pytest
from conftest import run_python

from reports.browser_check import BrowserCheck, BrowserUnavailable, check_html, main


def _png(colour: str) -> str:
    """A small matplotlib figure as a base64 PNG."""
    figure = pytest.importorskip("matplotlib.figure")
    fig = figure.Figure(figsize=(2, 1.5), dpi=50)
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [0, 1, 4], color=colour)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _page(tmp_path: Path, name: str, body: str, title: str = "report") -> Path:
    path = tmp_path / name
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def _check(path: Path, **kwargs) -> BrowserCheck:
    try:
        return check_html(path, **kwargs)
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def good_page(tmp_path: Path) -> Path:
    """A self-contained report: two embedded figures, tall enough to need scrolling."""
    body = (
        f"<h1>pairbench</h1><h2>Summary</h2><img alt='parity' src='data:image/png;base64,{_png('C0')}'>"
        f"<div style='height:2500px'></div><img alt='step times' src='data:image/png;base64,{_png('C1')}'>"
    )
    return _page(tmp_path, "good.html", body, title="pairbench report")


def test_good_page_is_ok_and_screenshot_is_full_page(good_page: Path, tmp_path: Path):
    shot = tmp_path / "shots" / "good.png"
    result = _check(good_page, screenshot=shot)
    assert result.title == "pairbench report"
    assert result.images == 2
    assert result.broken_images == []
    assert result.console_errors == []
    assert result.failed_requests == []
    assert result.ok
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width > 0 and height >= 2500  # the whole page, not just the viewport


def test_a_table_wider_than_the_page_and_a_summary_not_first_are_caught(tmp_path: Path):
    """At 1280 px: a table that would scroll sideways inside its box, or push the page wider, is named by the heading
    above it; the first section must be the Summary."""
    img = f"<img alt='fine' src='data:image/png;base64,{_png('C0')}'>"
    cells = "".join(f"<td>{'x' * 40}</td>" for _ in range(12))  # unbreakable words: 12 x 40 characters
    wide = f"<table><tr>{cells}</tr></table>"
    box = f"<div style='overflow-x:auto'>{wide}</div>"
    scrolled = _page(tmp_path, "scrolled.html", f"<h2>Summary</h2>{img}<h3>runs</h3>{box}")
    result = _check(scrolled)
    assert result.viewport_width <= 1280 and result.summary_first and result.page_width <= 1280
    assert len(result.wide_tables) == 1 and result.wide_tables[0].startswith("runs (")
    assert not result.fits and not result.ok
    pushed = _check(_page(tmp_path, "pushed.html", f"<h2>Summary</h2>{img}<h2>Ratios</h2>{wide}"))
    assert pushed.wide_tables[0].startswith("Ratios (") and pushed.page_width > 1280 and not pushed.ok
    narrow = "<table><tr><td>1.0</td><td>PyTorch</td></tr></table>"
    late = _check(_page(tmp_path, "late.html", f"<h2>Runs</h2>{img}{narrow}<h2>Summary</h2>"))
    assert late.sections == ["Runs", "Summary"] and late.fits and not late.summary_first and not late.ok
    fine = _check(_page(tmp_path, "fine.html", f"<h2>Summary</h2>{img}{narrow}<h2>Runs</h2>"))
    assert fine.sections == ["Summary", "Runs"] and fine.fits and fine.ok


def test_broken_embedded_image_is_named(tmp_path: Path):
    body = (
        f"<img alt='fine' src='data:image/png;base64,{_png('C0')}'>"
        "<img alt='parity figure' src='data:image/png;base64,iVBORw0KGgoAAAAbroken'>"
    )
    result = _check(_page(tmp_path, "broken.html", body))
    assert result.images == 2
    assert result.broken_images == ["parity figure"]
    assert result.failed_requests == []
    assert not result.ok


def test_thrown_error_and_console_error_are_captured(tmp_path: Path):
    body = (
        f"<img alt='fine' src='data:image/png;base64,{_png('C0')}'>"
        "<script>console.error('figure 3 missing');</script>"
        "<script>throw new TypeError('bad axis');</script>"
    )
    result = _check(_page(tmp_path, "scripts.html", body))
    assert result.broken_images == []
    assert any("figure 3 missing" in m for m in result.console_errors), result.console_errors
    assert any("TypeError" in m and "bad axis" in m for m in result.console_errors), result.console_errors
    assert not result.ok


def test_console_log_is_not_an_error(tmp_path: Path):
    img = f"<img alt='fine' src='data:image/png;base64,{_png('C0')}'>"
    body = f"<h2>Summary</h2>{img}<script>console.log('hello')</script>"
    result = _check(_page(tmp_path, "log.html", body))
    assert result.console_errors == []
    assert result.ok


def test_external_resource_is_reported(tmp_path: Path):
    body = f"<img alt='fine' src='data:image/png;base64,{_png('C0')}'><img alt='remote' src='http://127.0.0.1:9/x.png'>"
    result = _check(_page(tmp_path, "external.html", body))
    assert any(r.startswith("http://127.0.0.1:9/x.png") for r in result.failed_requests), result.failed_requests
    assert result.broken_images == ["remote"]
    assert not result.ok


def test_page_without_images_is_not_ok(tmp_path: Path):
    result = _check(_page(tmp_path, "empty.html", "<h2>Summary</h2><p>no figures</p>"))
    assert result.images == 0
    assert result.console_errors == [] and result.failed_requests == []
    assert not result.ok


def test_cli_exit_codes(good_page: Path, tmp_path: Path, capsys):
    bad = _page(tmp_path, "bad.html", "<img alt='gone' src='data:image/png;base64,AAAA'>")
    code = main([str(good_page)])
    if code == 2:
        pytest.skip(capsys.readouterr().err.strip())
    assert code == 0
    assert "OK" in capsys.readouterr().out
    assert main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "NOT OK" in out and "broken image: gone" in out


def test_missing_chromium_is_unavailable(good_page: Path, monkeypatch, capsys):
    monkeypatch.setenv("PAIRBENCH_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(BrowserUnavailable, match="apt-get install chromium"):
        check_html(good_page)
    assert main([str(good_page)]) == 2
    assert "apt-get install chromium" in capsys.readouterr().err


def test_missing_playwright_is_unavailable_and_module_still_imports(good_page: Path):
    code = (
        "import sys; sys.modules['playwright'] = None\n"
        "import reports.browser_check as bc\n"
        "bc._chromium = lambda: sys.executable\n"
        f"try:\n    bc.check_html({str(good_page)!r})\n"
        "except bc.BrowserUnavailable as exc:\n    print('UNAVAILABLE', exc)\n"
    )
    proc = run_python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "UNAVAILABLE" in proc.stdout and "pip install playwright" in proc.stdout, proc.stdout


def test_ok_property():
    good = {"title": "t", "images": 1, "sections": ["Summary"]}
    assert BrowserCheck(**good).ok
    assert not BrowserCheck(**good, console_errors=["x"]).ok
    assert not BrowserCheck(**good, broken_images=["x"]).ok
    assert not BrowserCheck(**good, failed_requests=["x"]).ok
    assert not BrowserCheck(**{**good, "images": 0}).ok
    assert not BrowserCheck(**good, wide_tables=["Runs (1400 px)"]).ok
    assert not BrowserCheck(**good, page_width=1400).ok
    assert not BrowserCheck(**{**good, "sections": ["Runs", "Summary"]}).ok
    assert not BrowserCheck(**{**good, "sections": []}).ok


def test_missing_file_raises(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        check_html(tmp_path / "absent.html")


def test_chromium_sandbox_is_off_only_for_root():
    from reports.browser_check import chromium_flags

    assert "--no-sandbox" in chromium_flags(euid=0)
    assert "--no-sandbox" not in chromium_flags(euid=1000) and "--headless" in chromium_flags(euid=1000)
