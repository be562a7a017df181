"""A headless Chromium for the tests, driven by Selenium through Debian's
chromedriver (it downloads nothing): Debian's chromium and chromium-driver,
installed when missing (CI runs as root); skipped, with the reason, where
that cannot be done. A fresh profile per browser, no network of its own."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import debian_packages

PACKAGES = ("chromium", "chromium-driver")
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def ensure_installed() -> None:
    debian_packages(PACKAGES, CHROMIUM.exists() and DRIVER.exists(), "chromium")


@contextmanager
def chromium():
    """A headless Chromium under Selenium; quit, and its profile removed, on exit."""
    ensure_installed()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    profile = tempfile.mkdtemp(prefix="desk-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(DRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
