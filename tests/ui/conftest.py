"""The browser of the dashboard's tests: Debian's headless Chromium, driven by Selenium
through Debian's chromedriver (scripts/ensure-chromium.sh installs both; `make test`
runs it). No browser is ever downloaded: Selenium is given the driver's path, so its
manager has nothing to fetch. The machine's network may be closed: the flags keep
Chromium from reaching out (and stalling) at start."""

import os
import shutil
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,800"]
#: The size of the screenshots the docs show.
VIEWPORT = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}


@pytest.fixture
def browser():
    """A fresh headless Chromium (its own profile: nothing kept between tests), quit after
    the test."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromedriver are not installed: run "
                    "`bash scripts/ensure-chromium.sh` (as root)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="genisys-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + ["--user-data-dir=" + profile]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORT)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
