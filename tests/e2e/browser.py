"""A real headless Chromium for the dashboard tests: Debian's chromium driven by its chromedriver
through Selenium, started with the flags that keep it off the network (no background updates,
sync or QUIC) and a fresh profile directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

OFFLINE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1500",
)


def browser_paths() -> tuple[str, str]:
    """chromium and chromedriver on PATH; fails the test (it cannot be skipped) if either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "the dashboard's browser tests need chromium and chromedriver: run `make setup` as root, "
            "or `apt-get install chromium chromium-driver`"
        )
    return chromium, driver


@contextmanager
def headless_chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    chromium, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*OFFLINE_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()


def script(browser: webdriver.Chrome, code: str) -> Any:
    """Runs `code` (a function body that returns) in the page."""
    return browser.execute_script(code)
