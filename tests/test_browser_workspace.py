"""The workspace in real headless Chromium (Debian's `chromium` and `chromium-driver`; nothing is
downloaded, no host but 127.0.0.1 resolves): on a database holding the demo, an analyst goes
stories -> story -> near misses, marks one right with the keyboard, sees what a rebuild would
change, applies it and finds the new match. The screenshots in docs/ come from this run.

Skips, saying why, where Chromium or its driver is missing.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _apiserver import serving
from _workspace_demo import GONE_FEED, OFF_STORY_NEAR_MISS, settings_for, store_demo
from test_browser_serve import RENDER_TIMEOUT, _loaded_from, browser  # noqa: F401  (the Chromium fixture)

from monitor.demo.kept import STORY
from monitor.server import create_app
from monitor.service import MonitorService

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "browser-test-token"
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db_file = store_demo(tmp_path_factory.mktemp("browser-workspace"))
    with MonitorService(settings_for(db_file, token=TOKEN)) as svc, serving(create_app(svc)) as base:
        yield base


def _screenshot(driver: object, name: str, height: int) -> None:
    """The top of the page, at a desktop width (the window is put back afterwards): into docs/ when
    MONITOR_SCREENSHOTS=docs asks for the README's pictures to be made again, else into a scratch
    folder, so that a test run never changes the tracked files."""
    folder = DOCS if os.environ.get("MONITOR_SCREENSHOTS") == "docs" else Path(tempfile.mkdtemp(prefix="shots-"))
    driver.set_window_size(1100, height)  # type: ignore[attr-defined]
    driver.execute_script("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    assert driver.save_screenshot(str(folder / name))  # type: ignore[attr-defined]
    assert (folder / name).stat().st_size > 10_000, "a blank screenshot"
    driver.set_window_size(1100, 900)  # type: ignore[attr-defined]


def test_judge_a_near_miss_preview_apply(browser: object, workspace: str) -> None:  # noqa: F811
    d = browser
    d.set_window_size(1100, 900)  # type: ignore[attr-defined]
    d.get(f"{workspace}/stories")  # type: ignore[attr-defined]
    # the token asked for once, then the page asked for
    assert d.current_url.startswith(f"{workspace}/login")  # type: ignore[attr-defined]
    field = d.find_element(By.NAME, "token")  # type: ignore[attr-defined]
    field.send_keys(TOKEN, Keys.ENTER)
    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: drv.current_url == f"{workspace}/stories")

    d.find_element(By.LINK_TEXT, "Trump–Kim summit, 2018").click()  # type: ignore[attr-defined]
    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "figure svg.chart"))
    assert d.current_url == f"{workspace}/stories/{STORY}"  # type: ignore[attr-defined]
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "li.item .head a")]  # type: ignore[attr-defined]
    assert OFF_STORY_NEAR_MISS not in titles and len(titles) >= 5
    assert not d.find_elements(By.TAG_NAME, "script")  # type: ignore[attr-defined]
    assert all(url.startswith(workspace + "/") for url in _loaded_from(d, workspace))
    # the stylesheet applied (it is a file from this server; the policy allows no inline style)
    assert d.execute_script("return getComputedStyle(document.querySelector('nav.tabs')).display") == "flex"  # type: ignore[attr-defined]
    d.find_element(By.CSS_SELECTOR, "details.copies summary").click()  # type: ignore[attr-defined]
    _screenshot(d, "workspace-story.png", 1420)

    d.find_element(By.PARTIAL_LINK_TEXT, "Near misses").click()  # type: ignore[attr-defined]
    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: "tab=near-misses" in drv.current_url)
    [miss] = d.find_elements(By.CSS_SELECTOR, "li.item")  # type: ignore[attr-defined]
    assert OFF_STORY_NEAR_MISS in miss.text and "below the threshold" in miss.text
    # keyboard only: type the note, Tab to the button, press Enter
    note = miss.find_element(By.NAME, "note")
    note.send_keys("the summit is the story's too")
    note.send_keys(Keys.TAB)
    focused = d.switch_to.active_element  # type: ignore[attr-defined]
    assert focused.text == "Mark right"
    focused.send_keys(Keys.ENTER)

    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: drv.current_url.endswith("/changes"))
    added = d.find_elements(By.CSS_SELECTOR, "ul.changes li")  # type: ignore[attr-defined]
    assert len(added) == 1 and OFF_STORY_NEAR_MISS in added[0].text
    assert "1 match to add" in d.find_element(By.CSS_SELECTOR, "p.summary").text  # type: ignore[attr-defined]
    d.find_element(By.CSS_SELECTOR, "form.apply button").click()  # type: ignore[attr-defined]

    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "p.notice"))
    assert "1 match added, 0 removed" in d.find_element(By.CSS_SELECTOR, "p.notice").text  # type: ignore[attr-defined]
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "li.item .head a")]  # type: ignore[attr-defined]
    assert OFF_STORY_NEAR_MISS in titles

    d.find_element(By.LINK_TEXT, "Feeds").click()  # type: ignore[attr-defined]
    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "table.feeds"))
    rows = d.find_elements(By.CSS_SELECTOR, "table.feeds tbody tr")  # type: ignore[attr-defined]
    assert len(rows) == 7
    failing = next(r for r in rows if GONE_FEED in r.text)
    assert "error" in failing.text and "404" in failing.text
    # switch a feed off from the keyboard: focus its button, press Enter
    rows[0].find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    WebDriverWait(d, RENDER_TIMEOUT).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "tr.disabled"))
    [off] = d.find_elements(By.CSS_SELECTOR, "tr.disabled")  # type: ignore[attr-defined]
    assert "disabled" in off.text and off.find_element(By.TAG_NAME, "button").text == "Enable"
    _screenshot(d, "workspace-feeds.png", 900)
