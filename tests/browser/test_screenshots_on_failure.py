"""A failing browser test leaves a picture of the page it was on in `var/screenshots/`; a passing one none.

The browser tests run here with the suite's own `browser` fixture and report hook, but a stand-in for Chromium
(what is checked is what the suite does when a test fails, not the browser), in a pytest run of their own.
"""

import pytest
from django.conf import settings

from tests.browser.conftest import SCREENSHOTS

pytest_plugins = ["pytester"]
# A pytest run of its own, as the browser tests run: make test's, not make check's.
pytestmark = pytest.mark.integration

CONFTEST = '''
import pytest

from tests.browser.conftest import browser, pytest_runtest_makereport  # noqa: F401 - the suite's own


class PageThatDraws:
    """Chromium's part in a screenshot: a PNG of the page, written where it is asked to be."""

    def delete_all_cookies(self):
        pass

    def save_screenshot(self, path):
        with open(path, "wb") as picture:
            picture.write(b"\\x89PNG\\r\\n\\x1a\\n the page as it was")
        return True


@pytest.fixture(scope="session")
def chromium():
    return PageThatDraws()
'''

TESTS = """
def test_a_refund_that_goes_wrong(browser):
    assert "Refunded" in "Paid", "the order page still says Paid"


def test_a_refund_that_goes_right(browser):
    assert "Refunded" in "Refunded"
"""


@pytest.fixture
def screenshots():
    """The two pictures this file's run may leave, gone before and after it."""
    pictures = [SCREENSHOTS / f"test_a_refund_that_goes_{how}.png" for how in ("wrong", "right")]
    for picture in pictures:
        picture.unlink(missing_ok=True)
    yield pictures
    for picture in pictures:
        picture.unlink(missing_ok=True)


def test_a_failing_browser_test_leaves_a_screenshot_of_its_page(pytester, monkeypatch, screenshots):
    # The run of its own imports the suite's conftest, on the suite's settings.
    monkeypatch.setenv("PYTHONPATH", str(settings.BASE_DIR))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings.test")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_refund_page=TESTS)

    run = pytester.runpytest_subprocess("-p", "no:django", "-p", "no:randomly", "-p", "no:cacheprovider", "-s")

    run.assert_outcomes(passed=1, failed=1)
    failed, passed = screenshots
    assert failed.read_bytes().startswith(b"\x89PNG")
    assert not passed.exists()
    run.stdout.fnmatch_lines([f"*screenshot of the failing page: {failed}"])  # the path, shown with the failure
