"""The HR web page in a real browser: headless Chromium (Debian's package) driven by Selenium.

One ``lms-bridge serve-web`` subprocess for the module, on a free 127.0.0.1 port, over a
state store filled through the CLI: roster import (with phone numbers in it), JP records
seeded into a real Ralph, ``ledger sync``, ``users add``. The figures are those of
tests/test_reports.py. Chromium and its driver come from Debian (``apt-get install
chromium chromium-driver``); Selenium is pointed at /usr/bin/chromedriver so Selenium
Manager never downloads anything. Missing browser: the tests fail, they are not skipped.

The browser asks for Indonesian (Accept-Language id-ID), as an HR officer's would; English
comes from the switch on the page. HR's errand runs at 1366 px and 390 px (a phone) in both
languages, and every page it visits must not scroll sideways. Screenshots of each step go
to ``$LMS_BRIDGE_ARTIFACTS`` (default build/screenshots, ignored by git): look at them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from lms_bridge.demo.ralph import RalphLRS, free_port
from tests.fixtures.deployment import ROOT, Deployment, write_deployment
from tests.test_reports import KEY, A, B, C, D, X, _seed, _void
from tests.test_web import PHONE

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1366,1000",
    # The browser of an Indonesian HR officer: Accept-Language id (English comes from the switch on the page).
    "--lang=id-ID",
)
PASSWORD = "browser test password"  # noqa: S105 - a test password
PHONES = ("081234567890", "+6281298765432", "0813-1111-2222", "6285712345678")
YEAR_VIEW = "year=2026&as_of=2026-12-31"
ARTIFACTS = Path(os.environ.get("LMS_BRIDGE_ARTIFACTS") or ROOT / "build" / "screenshots")


@dataclass
class Site:
    """The running web page."""

    url: str
    deployment: Deployment
    ids: dict[str, str]


def _write_rosters(folder: Path) -> tuple[Path, Path]:
    """The rosters of tests/test_reports.py, with (consented) phone numbers the page must never show."""
    header = "nip,nama,unit_kode,unit_nama,jabatan,jenis_asn,telepon,telegram_id,email\n"
    phone = dict(zip((A, B, C, D), PHONES, strict=True))

    def rows(b_unit: str) -> str:
        units = {A: "U1,Unit Satu", B: b_unit, C: "U2,Unit Dua", D: "U2,Unit Dua"}
        names = {A: "Ani", B: "Budi", C: "Citra", D: "Dedi"}
        return "".join(
            f"{nip},{names[nip]},{units[nip]},WI,PNS,{phone[nip]},,{names[nip].lower()}@example.go.id\n"
            for nip in (A, B, C, D)
        )

    first, second = folder / "roster-jan.csv", folder / "roster-jul.csv"
    first.write_text(header + rows("U1,Unit Satu"))
    second.write_text(header + rows("U2,Unit Dua"))
    return first, second


def _deployment(folder: Path, lrs: RalphLRS) -> Deployment:
    return write_deployment(
        folder,
        state_url=f"sqlite:///{folder / 'state.db'}",
        lrs_url=lrs.url,
        password=lrs.password,
        username=lrs.username,
        env={
            "LMS_BRIDGE_PSEUDONYM_KEY": KEY,
            "LMS_BRIDGE_WEB_SECRET_KEY": "browser-test-session-key-0123456789abcdef",
            "HR_PASSWORD": PASSWORD,
        },
    )


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve-web exited ({process.returncode}):\n{log.read_text()}")
        try:
            urllib.request.urlopen(url + "/login", timeout=1).close()  # noqa: S310 - our own loopback server
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"serve-web did not answer within {timeout} s:\n{log.read_text()}")


@contextmanager
def serve_web(deployment: Deployment, folder: Path) -> Iterator[str]:
    """``serve-web`` of ``deployment`` on a free loopback port, up and answering; stopped on exit."""
    port = free_port()
    log = folder / "serve-web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lms_bridge.cli",
                "--config",
                str(deployment.config),
                "serve-web",
                "--port",
                str(port),
            ],
            env=deployment.env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``serve-web`` on a free loopback port over a store filled through the CLI."""
    folder = tmp_path_factory.mktemp("web-site")
    with RalphLRS() as lrs:
        ids = _seed(lrs)
        _void(lrs, ids["c_voided"], C)
        deployment = _deployment(folder, lrs)
        first, second = _write_rosters(folder)
        deployment.run("people", "import", str(first), "--effective", "2026-01-01", check=True)
        deployment.run("people", "import", str(second), "--effective", "2026-07-01", check=True)
        synced = deployment.run("ledger", "sync", check=True)
        assert "1 voids" in synced.stdout, synced.stdout
    deployment.run("users", "add", "hr-all", "--password-env", "HR_PASSWORD", check=True)
    deployment.run("users", "add", "hr-u1", "--units", "U1", "--password-env", "HR_PASSWORD", check=True)
    with serve_web(deployment, folder) as url:
        yield Site(url=url, deployment=deployment, ids=ids)


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile and a download folder (``chrome.download_dir``)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: install Debian's packages (apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )
    downloads = tmp_path_factory.mktemp("downloads")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            # The Rekap JP is an attachment: saved to the folder, never shown in the PDF viewer.
            "plugins.always_open_pdf_externally": True,
            "safebrowsing.enabled": False,
            "intl.accept_languages": "id-ID,id",
        },
    )
    # An explicit driver path: Selenium Manager (which would download a driver) is never run.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.download_dir = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chrome: WebDriver, site: Site) -> WebDriver:
    """The browser with no session (cookies of the site removed)."""
    chrome.get(site.url + "/login")
    chrome.delete_all_cookies()
    return chrome


def _click(browser: WebDriver, element: WebElement) -> None:
    """Click a link or submit button and wait until the next page has loaded (click() does not wait)."""
    # Mark the current document; the next page is loaded when the mark is gone and the new one is complete.
    # (staleness_of() can fail with "Node ... does not belong to the document" mid-navigation.)
    browser.execute_script("window.__lmsBridgeOldPage = true;")
    element.click()

    def next_page_loaded(driver: WebDriver) -> bool:
        try:
            return bool(
                driver.execute_script(
                    "return window.__lmsBridgeOldPage === undefined && document.readyState === 'complete';"
                )
            )
        except WebDriverException:
            return False  # the page is being replaced

    WebDriverWait(browser, 20).until(next_page_loaded)


def _sign_in(browser: WebDriver, username: str, password: str = PASSWORD) -> None:
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    _click(browser, browser.find_element(By.ID, "sign-in"))


def _nips(browser: WebDriver) -> list[str]:
    return [row.get_attribute("data-nip") for row in browser.find_elements(By.CSS_SELECTOR, "#people tr[data-nip]")]


def _no_phone(browser: WebDriver) -> None:
    source = browser.page_source
    assert not PHONE.search(source), (browser.current_url, PHONE.search(source))
    # The roster's numbers in any spelling: every run of digits (with separators) checked.
    runs = [re.sub(r"\D", "", run) for run in re.findall(r"\d[\d\s.+-]*\d", source)]
    for phone in PHONES:
        tail = re.sub(r"\D", "", phone)[-9:]
        assert not any(tail in run for run in runs), (browser.current_url, phone)


def _wait_for_download(folder: Path, suffix: str, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        partial = [p for p in folder.iterdir() if p.name.endswith(".crdownload")]
        if done and not partial:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} download in {folder} after {timeout} s: {list(folder.iterdir())}")


def _statuses(browser: WebDriver) -> list[str | None]:
    return [row.get_attribute("data-status") for row in browser.find_elements(By.CSS_SELECTOR, "#records tr.record")]


def test_log_in_filter_search_open_a_person_and_download_the_xlsx(browser: WebDriver, site: Site):
    browser.set_window_size(1366, 1000)
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    _sign_in(browser, "hr-all")
    assert browser.current_url.endswith(f"/compliance?{YEAR_VIEW}")
    assert _nips(browser) == [A, C, D, B, X]
    assert browser.find_element(By.ID, "current-user").text == "hr-all"
    _no_phone(browser)

    # Filter a unit with the form (year and as-of date stay as they were).
    Select(browser.find_element(By.ID, "unit")).select_by_value("U2")
    _click(browser, browser.find_element(By.ID, "apply"))
    assert "unit=U2" in browser.current_url and "as_of=2026-12-31" in browser.current_url
    assert _nips(browser) == [C, D, B]
    summary = browser.find_elements(By.CSS_SELECTOR, "#summary tr[data-unit]")
    assert [row.get_attribute("data-unit") for row in summary] == ["U2"]
    assert [cell.text for cell in summary[0].find_elements(By.TAG_NAME, "td")] == [
        "U2 - Unit Dua",
        "3",
        "0",
        "0%",
        "19",
    ]

    # Search by name, then open the person: voided record flagged, chart present.
    search = browser.find_element(By.ID, "q")
    search.clear()
    search.send_keys("citra")
    _click(browser, browser.find_element(By.ID, "apply"))
    assert _nips(browser) == [C]
    assert browser.find_element(By.CSS_SELECTOR, f'tr[data-nip="{C}"] .not-met').text == "Belum memenuhi"
    _click(browser, browser.find_element(By.CSS_SELECTOR, f'tr[data-nip="{C}"] a.person-link'))
    assert f"/person/{C}" in browser.current_url
    assert "Citra" in browser.find_element(By.ID, "person-title").text
    assert _statuses(browser) == ["counted", "voided", "counted"]
    assert browser.find_element(By.CSS_SELECTOR, f'tr[data-record="{site.ids["c_voided"]}"] td.status').text == (
        "Dibatalkan"
    )
    assert browser.find_element(By.ID, "person-jp").text == "19 dari 20"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#jp-chart svg g.bar")) == 12
    _no_phone(browser)

    # Search by NIP (typed with spaces), open Ani: the evidence behind her course record.
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    browser.find_element(By.ID, "q").send_keys("19880517 201403")
    _click(browser, browser.find_element(By.ID, "apply"))
    assert _nips(browser) == [A]
    _click(browser, browser.find_element(By.CSS_SELECTOR, "#people a.person-link"))
    evidence = browser.find_element(By.CSS_SELECTOR, f'li[data-evidence="{site.ids["evidence"]}"]').text
    assert "menyelesaikan Pelatihan Evaluasi" in evidence and "WIB" in evidence
    assert browser.find_element(By.ID, "person-status").text == "Sudah memenuhi"
    bars = {
        bar.get_attribute("data-month"): bar.get_attribute("data-jp")
        for bar in browser.find_elements(By.CSS_SELECTOR, "#jp-chart svg g.bar")
    }
    assert (bars["3"], bars["4"], bars["11"], bars["6"]) == ("12", "4", "4", "0")
    _no_phone(browser)
    _screenshot(browser, "person-with-evidence-id-1366")

    # Download the compliance table as XLSX and read it back.
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    path = _download(browser, "xlsx")
    assert path.name == "jp-compliance-2026-all-2026-12-31.xlsx"
    book = load_workbook(path)
    # HR's workbook: title rows, Indonesian headers, one sheet per unit, print setup.
    assert book.sheetnames == ["Ringkasan", "Semua", "U1", "U2", "(tidak ada di daftar pegawai)"]
    people = book["Semua"]
    head = _header_row(people)
    assert people["A1"].value.startswith("Rekap JP 2026") and people["A2"].value == "per tanggal 31 Desember 2026"
    assert [cell.value for cell in people[head]] == WORDS["id"]["header"]
    assert people.page_setup.orientation == "landscape" and people.print_title_rows == f"${head}:${head}"
    table = {row[2]: row for row in people.iter_rows(min_row=head + 1, values_only=True)}
    assert list(table) == [A, C, D, B, X]
    assert (table[A][5], table[A][9], table[B][5], table[B][0], table[X][1]) == (
        20,
        "Sudah memenuhi",
        19.5,
        "U2",
        "(tidak ada di daftar pegawai)",
    )
    summary = book["Ringkasan"]
    summary_rows = {row[0]: row for row in summary.iter_rows(min_row=_header_row(summary) + 1, values_only=True)}
    assert summary_rows["U1"][2:4] == (1, 1) and summary_rows["U2"][2:4] == (3, 0)
    assert not any(PHONE.search(str(value)) for row in people.iter_rows(values_only=True) for value in row)


def _header_row(sheet: Any) -> int:
    """The row of the table's header, below the workbook's title rows."""
    return next(row for row in range(1, 12) if sheet.cell(row=row, column=1).value in ("Kode unit", "Unit code"))


def _download(browser: WebDriver, extension: str) -> Path:
    """Click the page's download link of ``extension`` into an emptied download folder; the file."""
    folder: Path = browser.download_dir  # type: ignore[attr-defined]
    for old in folder.iterdir():
        old.unlink()
    browser.find_element(By.ID, f"download-{extension}").click()
    return _wait_for_download(folder, f".{extension}")


def _no_sideways_scroll(browser: WebDriver) -> None:
    width, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")
    assert width <= inner, (browser.current_url, width, inner)


def _screenshot(browser: WebDriver, name: str) -> Path:
    """The whole page as a PNG under ARTIFACTS (the window made as tall as the page for the shot)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    browser.set_window_size(size["width"], min(max(height + 140, size["height"]), 6000))
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(size["width"], size["height"])
    return path


#: What the page says in each language.
WORDS = {
    "id": {
        "headline": "1 dari 5 ASN sudah memenuhi 20 JP",
        "as_of": "per tanggal 31 Desember 2026",
        "not_met": "Belum memenuhi",
        "jp": "19 dari 20",
        "counted": "Dihitung",
        "header": [
            "Kode unit",
            "Unit kerja",
            "NIP",
            "Nama",
            "Jenis ASN",
            "JP",
            "Target",
            "Kekurangan JP",
            "Capaian",
            "Status",
            "Ditunda",
        ],
        "sheets": ["Ringkasan", "Semua"],
        "recap": "Rekap JP 2026",
        "total": "19,00",
        "status": "Belum memenuhi",
        "cop": "C10 Komunitas belajar (CoP): paling banyak 2 JP per hari",
    },
    "en": {
        "headline": "1 of 5 civil servants have met the 20 JP target",
        "as_of": "as of December 31, 2026",
        "not_met": "Target not met",
        "jp": "19 of 20",
        "counted": "Counted",
        "header": [
            "Unit code",
            "Work unit",
            "NIP",
            "Name",
            "Employee type",
            "JP",
            "Target",
            "JP still needed",
            "Achievement",
            "Status",
            "Pending",
        ],
        "sheets": ["Summary", "All"],
        "recap": "JP recap 2026",
        "total": "19.00",
        "status": "Not met",
        "cop": "C10 Community of practice (CoP): at most 2 JP per day",
    },
}


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.parametrize("language", ["id", "en"])
def test_hr_reads_the_overview_filters_sorts_opens_a_person_and_downloads(
    browser: WebDriver, site: Site, language: str, width: int
):
    """The whole errand of an HR officer, on a desk screen and a phone, in both languages."""
    words = WORDS[language]
    browser.set_window_size(width, 900)
    assert browser.execute_script("return window.innerWidth;") == width
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "id"  # Accept-Language id-ID
    _no_sideways_scroll(browser)
    _sign_in(browser, "hr-all")
    if language == "en":
        _click(browser, browser.find_element(By.ID, "language-en"))
        assert browser.current_url.endswith(f"/compliance?{YEAR_VIEW}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language

    # The overview: totals, per unit, the bands, who is close.
    assert browser.find_element(By.ID, "headline").text == words["headline"]
    assert browser.find_element(By.ID, "as-of").text == words["as_of"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#distribution svg g.band")) == 6
    assert [li.get_attribute("data-nip") for li in browser.find_elements(By.CSS_SELECTOR, "#close li")] == [B, C]
    _no_sideways_scroll(browser)
    _screenshot(browser, f"overview-{language}-{width}")

    # Only those who have not met the target, then the largest shortfall first.
    Select(browser.find_element(By.ID, "status")).select_by_value("unmet")
    _click(browser, browser.find_element(By.ID, "apply"))
    assert "status=unmet" in browser.current_url and _nips(browser) == [C, D, B, X]
    statuses = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#people td.status")}
    assert statuses == {words["not_met"]}
    _click(browser, browser.find_element(By.ID, "sort-needed"))
    assert "sort=needed" in browser.current_url and "dir=desc" in browser.current_url
    assert _nips(browser) == [D, X, C, B]
    _no_sideways_scroll(browser)
    _screenshot(browser, f"unmet-by-shortfall-{language}-{width}")

    # The table as it stands, in Excel.
    path = _download(browser, "xlsx")
    book = load_workbook(path)
    assert book.sheetnames[:2] == words["sheets"]
    people = book[words["sheets"][1]]
    head = _header_row(people)
    assert [cell.value for cell in people[head]] == words["header"]
    assert [row[2] for row in people.iter_rows(min_row=head + 1, values_only=True)] == [D, X, C, B]

    # One person: records, evidence, the chart with its target line.
    _click(browser, browser.find_element(By.CSS_SELECTOR, f'tr[data-nip="{C}"] a.person-link'))
    assert f"/person/{C}" in browser.current_url
    assert browser.find_element(By.ID, "person-jp").text == words["jp"]
    assert _statuses(browser) == ["counted", "voided", "counted"]
    assert browser.find_element(By.CSS_SELECTOR, "#records tr.counted td.status").text == words["counted"]
    chart = browser.find_element(By.CSS_SELECTOR, "#jp-chart svg")
    assert chart.find_elements(By.CSS_SELECTOR, "g.target") and chart.size["width"] <= width
    _no_sideways_scroll(browser)
    _screenshot(browser, f"person-{language}-{width}")

    # The printable Rekap JP of that person, in the page's language, read back.
    path = _download(browser, "pdf")
    assert path.name == f"rekap-jp-2026-{C}.pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    assert words["recap"] in text and "19750412 200003 1 002" in text and "Citra" in text
    assert words["total"] in text and words["status"] in text
    assert words["cop"] in " ".join(text.split())
    digest = re.search(r"[0-9a-f]{64}", text.replace("\n", ""))
    assert digest is not None
    # The hash is that of the records the recap lists (the CLI's JSON listing prints the same).
    listed = site.deployment.run(
        "report", "person", C, "--year", "2026", "--as-of", "2026-12-31", "--format", "json", check=True
    )
    assert json.loads(listed.stdout)["hash"] == digest.group(0)

    # The login and error pages fit as well.
    browser.get(f"{site.url}/nothing-here")
    _no_sideways_scroll(browser)
    browser.get(f"{site.url}/language/id?next=/compliance")  # back to the default for the next test


def test_a_wrong_password_is_refused(browser: WebDriver, site: Site):
    browser.get(f"{site.url}/compliance")
    _sign_in(browser, "hr-all", "not the password")
    assert "/login" in browser.current_url
    assert browser.find_element(By.ID, "login-error").text == (
        "Nama pengguna atau kata sandi belum tepat. Silakan coba lagi."
    )
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    assert "/login" in browser.current_url and not browser.find_elements(By.ID, "people")


def test_pages_without_a_session_redirect_to_login(browser: WebDriver, site: Site):
    for path in (f"/compliance?{YEAR_VIEW}", f"/person/{A}?year=2026", "/compliance.xlsx?year=2026", "/"):
        browser.get(site.url + path)
        assert browser.current_url.startswith(f"{site.url}/login"), path
        assert browser.find_elements(By.ID, "login-form"), path
    assert not list(browser.download_dir.glob("*.crdownload"))  # type: ignore[attr-defined]


def test_a_unit_restricted_user_cannot_open_another_units_person(browser: WebDriver, site: Site):
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    _sign_in(browser, "hr-u1")
    assert _nips(browser) == [A]
    options = [option.get_attribute("value") for option in Select(browser.find_element(By.ID, "unit")).options]
    assert options == ["", "U1"]
    for nip in (C, D, B, X):
        browser.get(f"{site.url}/person/{nip}?{YEAR_VIEW}")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Halaman tidak ditemukan", nip
        assert nip not in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}&unit=U2")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Halaman tidak ditemukan"
    browser.get(f"{site.url}/person/{A}?{YEAR_VIEW}")
    assert "Ani" in browser.find_element(By.ID, "person-title").text


def test_no_page_shows_a_phone_number(browser: WebDriver, site: Site):
    browser.get(f"{site.url}/compliance?{YEAR_VIEW}")
    _sign_in(browser, "hr-all")
    _no_phone(browser)
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#people a.person-link")]
    assert len(links) == 5
    for link in links:
        browser.get(link)
        assert browser.find_elements(By.ID, "records")
        _no_phone(browser)
    for path in ("/login", f"/compliance?{YEAR_VIEW}&unit=U1", f"/compliance?{YEAR_VIEW}&q=budi", "/nothing"):
        browser.get(site.url + path)
        _no_phone(browser)
