"""Helpers the browser tests share (the fixtures live in this folder's conftest.py)."""

import os
from pathlib import Path


def keep_for_readme(browser, name: str, height: int = 1600) -> None:
    """`make screenshots` (SCREENSHOTS_DIR set) keeps the README's pictures of the page a test is on."""
    directory = os.environ.get("SCREENSHOTS_DIR")
    if not directory:
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    width = browser.get_window_size()["width"]
    browser.set_window_size(width, height)
    try:
        browser.save_screenshot(str(Path(directory) / f"{name}.png"))
    finally:
        browser.set_window_size(width, 1000)
