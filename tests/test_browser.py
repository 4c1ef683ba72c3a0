"""The HTML digest in a real browser: headless Chromium renders the digest of the bundled demo
site; the DOM it built holds the chart and the clusters, and its screenshot shows them.

Skips, saying why, where no Chromium is installed (`.ci/run` installs Debian's `chromium`).
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The chart's bars are drawn in the digest's accent colour, #2b5fb4.
_BAR_RGB = (0x2B, 0x5F, 0xB4)


def _browser() -> str:
    found = next((path for name in _BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip("no Chromium found (install Debian's `chromium`, as .ci/run does)")
    return found


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def digest_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML digest of one pass over the bundled demo site, as `monitor demo --format html` prints it."""
    folder = tmp_path_factory.mktemp("browser")
    p = subprocess.run([sys.executable, "-m", "monitor", "demo", "--format", "html"], capture_output=True,
                       text=True, timeout=180, env={k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"})
    assert p.returncode == 0, p.stderr[-3000:]
    page = folder / "digest.html"
    page.write_text(p.stdout, encoding="utf-8")
    return page


def test_chromium_builds_the_chart_and_the_clusters(digest_page: Path, tmp_path: Path) -> None:
    browser = _browser()
    p = _headless(browser, tmp_path / "profile", "--dump-dom", digest_page.as_uri())
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert "<svg" in dom and dom.count('class="bar"') >= 5          # the timeline chart, one bar per busy day
    # the wire story carried three times: one copy shown, the two others named, the first dated
    carried = re.search(r"Also carried by ([^;<]+); first: The Northern Wire", dom)
    assert carried and set(carried.group(1).split(", ")) < {"The Northern Wire", "Eastgate Times", "Harbour Ledger"}
    assert len(carried.group(1).split(", ")) == 2
    assert dom.count("<mark>") >= 10                                  # evidence highlighted in passages
    assert "<script" not in dom


def test_the_screenshot_shows_the_digest(digest_page: Path, tmp_path: Path) -> None:
    browser = _browser()
    shot = tmp_path / "digest.png"
    p = _headless(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000",
                  "--hide-scrollbars", digest_page.as_uri())
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    # The chart sits near the top: decoding 800 rows (in pure Python) is enough and quick.
    width, height, pixels = read_png(shot.read_bytes(), rows=800)
    assert (width, height) == (1200, 2000)
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), 3 * 97)}   # a sample of the pixels
    assert len(colours) > 20, "the screenshot is blank"
    bar_pixels = sum(1 for i in range(0, len(pixels), 3) if _near(pixels[i:i + 3], _BAR_RGB))
    assert bar_pixels > 200, "the chart's bars are not on the screen"


def _near(rgb: bytes, target: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, target))


def read_png(data: bytes, rows: int | None = None) -> tuple[int, int, bytes]:
    """(width, height, RGB bytes of the first `rows` rows) of an 8-bit RGB or RGBA PNG, standard library only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    decoded: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(min(height, rows or height)):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(kind, row, previous, channels)
        decoded.append(row)
        previous = row
    rgb = bytearray()
    for row in decoded:
        if channels == 3:
            rgb += row
        else:
            for x in range(0, stride, 4):
                rgb += row[x:x + 3]
    return width, height, bytes(rgb)


def _unfilter(kind: int, row: bytearray, prior: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = prior[i]
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = prior[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            row[i] = (row[i] + predictor) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter {kind}")
