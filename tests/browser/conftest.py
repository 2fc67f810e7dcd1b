"""A real browser (Debian's Chromium, driven by Selenium through chromedriver) against a live server.

`make test` installs `chromium` and `chromium-driver`; where they cannot be installed the tests are skipped,
saying so. A failing test leaves a screenshot of the page it was on in `var/screenshots/`.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# Headless, and quiet on a machine with no internet: no background fetches, no updates, no sync.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def _missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return (
                f"{path} is not installed: `make test` installs Debian's chromium and chromium-driver, "
                "which needs root (or sudo) and Debian's package mirror"
            )
    return None


_OUTCOMES = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_OUTCOMES, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def chromium():
    missing = _missing_browser()
    if missing:
        pytest.skip(missing)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers on the internet
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium, request):
    """The session's browser with no cookies left by another test; a screenshot if this test fails."""
    chromium.delete_all_cookies()
    yield chromium
    outcomes = request.node.stash.get(_OUTCOMES, {})
    if any(report.failed for report in outcomes.values()):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name}.png"
        chromium.save_screenshot(str(path))
        print(f"screenshot of the failing page: {path}")  # noqa: T201 - shown with the failure
