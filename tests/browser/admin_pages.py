"""What an operator does in the admin, as a browser does it: fill fields, click, wait for the page."""

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECONDS = 15


def page_left(old_page):
    """A wait condition: the page that held `old_page` has been replaced.

    Chromedriver sometimes reports a node of a page that is going away as "does not belong to the
    document" instead of stale, which selenium's own staleness_of lets escape; both mean gone.
    """

    def condition(_browser) -> bool:
        try:
            old_page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in (error.msg or ""):
                return True
            raise
        return False

    return condition


class AdminPages:
    def __init__(self, browser, base_url: str):
        self.browser = browser
        self.base_url = base_url

    def wait(self, condition, timeout: float = WAIT_SECONDS):
        return WebDriverWait(self.browser, timeout).until(condition)

    def open(self, path: str) -> None:
        self.browser.get(self.base_url + path)
        self.wait(lambda browser: browser.execute_script("return document.readyState") == "complete")

    def find(self, selector: str):
        return self.browser.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector: str):
        return self.browser.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector: str = "body") -> str:
        return self.find(selector).text

    def submit(self, button_selector: str) -> None:
        """Click a button that loads another page, and wait until that page is there."""
        old_page = self.find("html")
        self.find(button_selector).click()
        self.wait(page_left(old_page))
        self.wait(lambda browser: browser.execute_script("return document.readyState") == "complete")

    def log_in(self, email: str, password: str) -> None:
        self.open("/admin/login/?next=/admin/")
        self.find("#id_username").send_keys(email)
        self.find("#id_password").send_keys(password)
        self.submit("input[type=submit]")
        assert self.find_all("#logout-form"), self.text()

    def search(self, changelist: str, words: str) -> None:
        self.open(changelist)
        self.find("#searchbar").send_keys(words)
        self.submit("#changelist-search input[type=submit]")

    def run_action(self, changelist: str, action: str, *row_ids) -> str:
        """Tick the rows, choose the action, press Go; the messages the admin answers with."""
        self.open(changelist)
        for row_id in row_ids:
            self.find(f"input.action-select[value='{row_id}']").click()
        Select(self.find("select[name=action]")).select_by_value(action)
        self.submit("button[name=index]")
        return self.messages()

    def messages(self) -> str:
        return " | ".join(element.text for element in self.find_all("ul.messagelist li"))

    def click_link(self, text: str) -> None:
        old_page = self.find("html")
        self.browser.find_element(By.LINK_TEXT, text).click()
        self.wait(page_left(old_page))

    def click(self, selector: str) -> None:
        old_page = self.find("html")
        self.find(selector).click()
        self.wait(page_left(old_page))
