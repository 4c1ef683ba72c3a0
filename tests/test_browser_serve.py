"""What `monitor serve` shows a browser, in real headless Chromium driven by its chromedriver
(Debian's `chromium` and `chromium-driver`; nothing is downloaded): `/docs` and `/redoc` render
every operation with no network at all, and `/` leads to them and to the stories.

Chromium resolves no host name but 127.0.0.1 here (--host-resolver-rules), so a page that needs
a CDN stays blank; the test also checks that every resource the page loaded came from the server.
Skips, saying why, where Chromium or its driver is missing (`.ci/run` installs both).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from _apiserver import serving
from test_api import STRIKE, SUMMIT, _fill, _settings
from test_api_schema import JUDGMENTS, READ_OPERATIONS

from monitor.server import WEBHOOK_PATH, create_app
from monitor.service import MonitorService

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Every operation the API has (test_api_schema checks the schema against the same list).
OPERATIONS = {*READ_OPERATIONS, ("POST", WEBHOOK_PATH), ("POST", JUDGMENTS)}
RENDER_TIMEOUT = 60     # seconds Chromium may take to build the page on a busy machine (not a speed test)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium = next((p for name in ("chromium", "chromium-browser") if (p := shutil.which(name))), None)
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"           # Selenium Manager must never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                     # no network: every host name but the test server's address fails to resolve
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("serve")
    with MonitorService(_settings(f"sqlite:///{folder / 'monitor.db'}")) as svc, serving(create_app(svc)) as base:
        _fill(svc)
        yield base


def _loaded_from(driver: object, base: str) -> list[str]:
    """Every resource the page loaded (scripts, styles, the schema, images, fonts)."""
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")  # type: ignore[attr-defined]


def test_docs_lists_every_operation_offline(browser: object, server: str) -> None:
    browser.get(f"{server}/docs")  # type: ignore[attr-defined]
    WebDriverWait(browser, RENDER_TIMEOUT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(OPERATIONS))
    listed = set()
    for block in browser.find_elements(By.CSS_SELECTOR, ".opblock"):  # type: ignore[attr-defined]
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip()
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
        listed.add((method, path))
    assert listed == OPERATIONS
    loaded = _loaded_from(browser, server)
    assert any(url.endswith("/assets/docs/swagger-ui-bundle.js") for url in loaded)
    assert any(url.endswith("/openapi.json") for url in loaded)
    assert all(url.startswith(server + "/") for url in loaded), loaded


def test_redoc_lists_every_operation_offline(browser: object, server: str) -> None:
    browser.get(f"{server}/redoc")  # type: ignore[attr-defined]
    WebDriverWait(browser, RENDER_TIMEOUT).until(
        lambda d: "/api/matches" in d.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    for _method, path in OPERATIONS:
        assert path in text, path
    loaded = _loaded_from(browser, server)
    assert all(url.startswith(server + "/") for url in loaded), loaded


def test_the_front_page_leads_to_the_docs_and_the_stories(browser: object, server: str) -> None:
    browser.get(f"{server}/")  # type: ignore[attr-defined]
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}  # type: ignore[attr-defined]
    assert links["/docs"] == f"{server}/docs" and links["/redoc"] == f"{server}/redoc"
    story_links = [href for href in links.values() if "/api/stories/" in href]
    assert f"{server}/api/stories/{SUMMIT}" in story_links and f"{server}/api/stories/{STRIKE}" in story_links
    assert "Harbour <strike>" in browser.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert not browser.find_elements(By.TAG_NAME, "strike")  # type: ignore[attr-defined]  # escaped, not markup
    browser.find_element(By.LINK_TEXT, "/docs").click()  # type: ignore[attr-defined]
    WebDriverWait(browser, RENDER_TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))


def test_the_digest_chart_spans_its_column(browser: object, server: str) -> None:
    """The HTML digest's timeline is as wide as the text around it, on a wide window and a narrow one."""
    for width in (1200, 480):
        browser.set_window_size(width, 900)  # type: ignore[attr-defined]
        browser.get(f"{server}/api/digest?format=html")  # type: ignore[attr-defined]
        charts = browser.execute_script(  # type: ignore[attr-defined]
            "return [...document.querySelectorAll('section figure svg')].map(svg => {"
            "  const column = svg.closest('section'); const style = getComputedStyle(column);"
            "  return [svg.getBoundingClientRect().width,"
            "          column.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)]; })")
        assert charts, "no chart in the digest"
        for chart, column in charts:
            assert abs(chart - column) <= 1, (width, chart, column)
