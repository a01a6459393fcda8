"""The *Komunitas Belajar* page (issue 21) in a real browser: headless Chromium, as an organiser and as HR.

One ``lms-bridge serve-web`` subprocess for the module, on a free 127.0.0.1 port, over a SQLite store
seeded as tests/test_report_cop.py seeds it (the LMS forum ``course:77``, the Telegram + Zoom community
``cop-terbuka``, the WhatsApp ``cop-wa``); its figures are the ones computed by hand there. Chromium,
its driver and the browser fixture are those of tests/test_web_browser.py (Debian's packages; missing,
the test fails). Screenshots go to ``$LMS_BRIDGE_ARTIFACTS`` (default build/screenshots).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.test_report_cop import KEY, UNITS, seed
from tests.test_web_browser import PASSWORD, _click, _screenshot, _sign_in, chrome, serve_web  # noqa: F401

pytestmark = pytest.mark.browser

MONTHS = ["Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"]
YEAR = 12  # the year's cell, after the twelve months


@dataclass
class Site:
    """The running web page."""

    url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``serve-web`` over the CoP fixture's store, with an organiser and an HR user."""
    folder = tmp_path_factory.mktemp("cop-site")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
        deployment, _settings, engine = seed(
            folder,
            f"sqlite:///{folder / 'state.db'}",
            env={"LMS_BRIDGE_WEB_SECRET_KEY": "cop-browser-test-session-key-0123456789", "HR_PASSWORD": PASSWORD},
        )
    engine.dispose()
    deployment.run("users", "add", "pengelola", "--role", "organiser", "--password-env", "HR_PASSWORD", check=True)
    deployment.run("users", "add", "hr-all", "--password-env", "HR_PASSWORD", check=True)
    with serve_web(deployment, folder) as url:
        yield Site(url=url)


@pytest.fixture
def browser(chrome: WebDriver, site: Site) -> WebDriver:  # noqa: F811 - the imported chrome fixture
    """The browser with no session: signed out through the page if a test left one, cookies removed."""
    chrome.set_window_size(1366, 1000)
    chrome.get(site.url + "/komunitas")
    for button in chrome.find_elements(By.ID, "logout"):
        _click(chrome, button)
    chrome.delete_all_cookies()
    return chrome


def _table(browser: WebDriver, community: str) -> dict[str, list[str]]:
    """The visible figures of one community's table: row label -> its cells as shown (months..., year)."""
    section = next(
        s
        for s in browser.find_elements(By.CSS_SELECTOR, "section.community")
        if s.find_element(By.TAG_NAME, "h2").text == community
    )
    rows = {}
    for row in section.find_elements(By.CSS_SELECTOR, "table.cop tbody tr"):
        label = row.find_element(By.CSS_SELECTOR, "th").text
        rows[label] = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    return rows


def _header(browser: WebDriver) -> list[str]:
    return [th.text for th in browser.find_elements(By.CSS_SELECTOR, "section.community table.cop thead th")]


def test_an_organiser_sees_aggregates_with_small_cells_hidden(browser: WebDriver, site: Site):
    browser.get(f"{site.url}/komunitas?year=2026")
    _sign_in(browser, "pengelola")
    assert "/komunitas" in browser.current_url, browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_element(By.ID, "cop-title").text == "Komunitas Belajar 2026"
    assert browser.find_element(By.ID, "small-cells").is_displayed()
    communities = [h2.text for h2 in browser.find_elements(By.CSS_SELECTOR, "section.community h2")]
    assert communities == ["cop-terbuka", "cop-wa", "course:77"]
    _screenshot(browser, "komunitas-organiser-all")

    # One community through the form.
    Select(browser.find_element(By.ID, "community")).select_by_value("cop-terbuka")
    _click(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    assert "community=cop-terbuka" in browser.current_url
    assert _header(browser) == ["Angka", *MONTHS, "Tahun"]
    rows = _table(browser, "cop-terbuka")
    _screenshot(browser, "komunitas-organiser")
    # Members known: 1, 6, 7 (7 for the year); the January 1 is about fewer than 5 people.
    assert rows["Anggota (dikenal)"][:3] == ["< 5", "6", "7"] and rows["Anggota (dikenal)"][YEAR] == "7"
    # Newcomers 1, 5, 1 (7 in the year); activated 1, 5, 0 (6): zero is shown, 0 people being no one.
    assert rows["Anggota baru"][:3] == ["< 5", "5", "< 5"] and rows["Anggota baru"][YEAR] == "7"
    assert rows["berkontribusi dalam 14 hari"][:3] == ["< 5", "5", "0"]
    # March's active rate 6 of 7; the year's reply rate 3 of 5 threads, median 3 h, 1.6 replies per thread.
    assert rows["Tingkat keaktifan"][:3] == ["< 5", "100 %", "85,7 %"]
    assert rows["Tingkat balasan (utas yang dijawab)"][YEAR] == "60 %"
    assert rows["Median waktu tanggapan pertama (jam)"][:3] == ["-", "2,5", "3"]
    assert rows["Balasan per utas"][YEAR] == "1,6"
    # The year's peer-to-peer share (2 of 6 replies, 4 repliers: hidden by month, shown for the year).
    assert rows["Porsi balasan antaranggota (tanpa fasilitator)"][1:3] == ["< 5", "< 5"]
    assert rows["Porsi balasan antaranggota (tanpa fasilitator)"][YEAR] == "33,3 %"
    # Brokers (A and E: 2 people) hidden; the highest betweenness (A, 0.8) is a figure about the graph.
    assert rows["Penghubung (anggota yang menjembatani kelompok terpisah)"][YEAR] == "< 5"
    assert rows["Betweenness tertinggi pada jejaring balasan"][YEAR] == "0,8"
    assert rows["Anggota yang memenuhi target JP"][YEAR] == "< 5"
    # Aggregates only: no NIP, no name, no pseudonym anywhere on the page.
    source = browser.page_source
    assert not any(nip in source for nip in UNITS) and "Orang " not in source and "~telegram" not in source


def test_hr_sees_the_exact_figures(browser: WebDriver, site: Site):
    browser.get(f"{site.url}/komunitas?year=2026&community=cop-terbuka")
    _sign_in(browser, "hr-all")
    assert "/komunitas" in browser.current_url, browser.find_element(By.TAG_NAME, "main").text
    assert not browser.find_elements(By.ID, "small-cells")
    rows = _table(browser, "cop-terbuka")
    _screenshot(browser, "komunitas-hr")
    assert rows["Anggota (dikenal)"][:3] == ["1", "6", "7"]
    assert rows["Anggota baru"][:3] == ["1", "5", "1"]
    assert rows["Porsi balasan antaranggota (tanpa fasilitator)"][1:3] == ["50 %", "0 %"]
    assert rows["Penghubung (anggota yang menjembatani kelompok terpisah)"][YEAR] == "2"
    assert rows["Anggota yang memenuhi target JP"][YEAR] == "1"
    assert "< 5" not in browser.find_element(By.CSS_SELECTOR, "section.community").text
