"""The dashboard in a real headless browser (Debian's chromium + chromium-driver, driven by
Selenium) against the real local API: sign in with the key, see a running tiny classification
job appear and its loss curve grow, open a checkpoint's plots, stop the job.

`AIFACTORY_SCREENSHOTS=docs` writes docs/dashboard-jobs.png and docs/dashboard-job.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.polling import wait_until as wait
from tests.servers import ApiServer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AIFACTORY_CHROMIUM", "/usr/bin/chromium"))
DRIVER = Path(os.environ.get("AIFACTORY_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL = "apt-get install -y chromium chromium-driver"
V = "/api/v1.5.0"
TINY_CLASSIFICATION = {
    "task": "classification",
    "algorithm": "resnet18",
    "pretrained": "False",
    "batch_size": "8",
    "image_resized_width": "32",
    "image_resized_height": "32",
    "num_workers": "0",
    "num_batches_to_display": "1",
    "num_epochs_to_finish": "200",  # long enough to watch and stop
    "max_num_checkpoints": "2",
}


@pytest.fixture(scope="module")
def browser_paths():
    found = [p for p in (CHROMIUM, DRIVER) if not (p.exists() and os.access(p, os.X_OK))]
    if found:
        # make test installs them where it can (scripts/test-deps.sh); elsewhere a loud skip
        pytest.skip(f"!!! {', '.join(map(str, found))} not found: install them with `{INSTALL}`")
    return CHROMIUM, DRIVER


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("dashboard") / "home"
    with ApiServer(home, extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "1"}) as server:
        yield server
        server.kill_jobs()


@pytest.fixture(scope="module")
def driver(browser_paths, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def job_id(api, tmp_path_factory):
    from trainer.vision.synthetic import generate

    data = generate(
        tmp_path_factory.mktemp("data") / "cls", "classification", num_images=60, image_size=32, num_classes=3
    )
    status, body = api.call("POST", f"{V}/train", form={**TINY_CLASSIFICATION, "data_dir": str(data)})
    assert status == 200, body
    return body["job_id"]


def screenshot(driver, name: str, tmp_path_factory) -> Path:
    target = (
        ROOT / "docs" if os.environ.get("AIFACTORY_SCREENSHOTS") == "docs" else tmp_path_factory.getbasetemp()
    )
    path = target / name
    driver.save_screenshot(str(path))
    return path


def by_id(driver, element_id):
    return driver.find_element("id", element_id)


def query(driver, selector: str, script: str = "return element"):
    """Reads the live DOM in one step: the page re-renders its tables on every refresh, so a
    WebElement found earlier may be stale by the time it is used."""
    return driver.execute_script(
        f"const element = document.querySelector(arguments[0]); if (!element) return null; {script}", selector
    )


def click(driver, selector: str) -> bool:
    return bool(query(driver, selector, "element.click(); return true"))


def polls(driver) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.polled || 0)"))


def test_page_and_files_are_served_without_the_key(api):
    status, page = api.call("GET", "/", key="")
    assert status == 200 and "<title>AI Factory</title>" in page
    status, script = api.call("GET", "/dashboard/app.js", key="", raw=True)
    assert status == 200 and b"x-api-key" in script
    assert api.call("GET", "/dashboard/nothing.js", key="")[0] == 404
    assert api.call("GET", f"{V}/devices", key="")[0] == 403  # the API itself still needs the key


def test_a_wrong_key_is_refused_and_the_right_one_signs_in(api, driver):
    driver.get(api.url + "/")
    wait(lambda: by_id(driver, "login").is_displayed(), 30, "the sign-in form")
    by_id(driver, "api-key").send_keys("not-the-key")
    by_id(driver, "login-button").click()
    wait(lambda: "refused" in by_id(driver, "login-error").text, 30, "the refusal")
    assert driver.execute_script("return sessionStorage.getItem('aifactory.apiKey')") is None
    key = by_id(driver, "api-key")
    key.clear()
    key.send_keys(api.api_key)
    by_id(driver, "login-button").click()
    wait(lambda: by_id(driver, "app").is_displayed(), 30, "the dashboard")
    assert not by_id(driver, "login").is_displayed()
    assert driver.execute_script("return sessionStorage.getItem('aifactory.apiKey')") == api.api_key
    assert driver.execute_script("return localStorage.length") == 0  # nothing outlives the tab


def _open(driver, job_id) -> str:
    """The job's row: listed by GET /api/v1.5.0/train, or opened by id where the server has no list."""
    selector = f"tr[data-job-key='v15:{job_id}']"
    if not query(driver, selector) and "open one by its id" in by_id(driver, "jobs-note").text:
        by_id(driver, "open-job-id").send_keys(job_id)
        by_id(driver, "open-button").click()
    wait(lambda: query(driver, selector), 60, f"job {job_id} in the list")
    return selector


def status_of(driver, selector: str):
    return query(driver, selector, "return element.dataset.status")


def test_a_running_job_appears_and_its_loss_curve_grows(api, driver, job_id, tmp_path_factory):
    wait(lambda: polls(driver) > 0, 30, "a first refresh")
    selector = _open(driver, job_id)
    wait(lambda: click(driver, selector), 30, "a click on the job")
    wait(lambda: by_id(driver, "job").is_displayed(), 30, "the job view")
    assert job_id in by_id(driver, "job-title").text
    wait(lambda: status_of(driver, selector) == "running", 240, "running")

    def points():
        return int(by_id(driver, "loss-chart").get_attribute("data-points") or 0)

    first = wait(points, 120, "a first loss point")
    wait(lambda: points() > first + 1, 120, "the loss curve to grow")
    assert query(driver, "#loss-chart polyline")
    assert int(by_id(driver, "lr-chart").get_attribute("data-points") or 0) >= 1
    assert "epoch" in query(driver, selector, "return element.textContent")
    screenshot(driver, "dashboard-jobs.png", tmp_path_factory)


def test_a_checkpoint_opens_with_its_metrics_and_plot(driver, tmp_path_factory):
    wait(lambda: click(driver, "#checkpoints button[data-epoch]"), 240, "a checkpoint")
    wait(lambda: by_id(driver, "checkpoint-detail").is_displayed(), 30, "the checkpoint view")
    plot = by_id(driver, "metric-plot")
    wait(
        lambda: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot),
        30,
        "the plot",
    )
    assert "accuracy" in by_id(driver, "checkpoint-metrics").text
    assert "Epoch" in by_id(driver, "checkpoint-title").text
    screenshot(driver, "dashboard-job.png", tmp_path_factory)


def test_the_log_leaves_out_metric_lines_until_asked(api, driver, job_id):
    def log_text():
        return by_id(driver, "logs").text

    def metric_lines_written():  # the trainer writes them after an evaluation, not at once
        body = api.call("GET", f"{V}/train/{job_id}/logs?metrics=true&limit=5000")[1]
        return any("#metric" in line for line in body.get("lines", []))

    wait(lambda: log_text().strip(), 120, "log lines")
    wait(metric_lines_written, 240, "the trainer's first #metric line")
    assert "#metric" not in log_text()
    first = log_text().splitlines()[0]
    assert not by_id(driver, "log-metrics").is_selected()
    by_id(driver, "log-metrics").click()
    wait(lambda: "#metric" in log_text(), 60, "the #metric lines")
    assert log_text().splitlines().count(first) == 1  # the log was read again from line 0, once


def test_the_stop_button_stops_the_job(api, driver, job_id):
    stop = by_id(driver, "stop-button")
    assert stop.is_enabled()
    stop.click()
    selector = f"tr[data-job-key='v15:{job_id}']"
    wait(lambda: status_of(driver, selector) == "stopped", 120, "the job to stop")
    assert api.call("GET", f"{V}/train/{job_id}")[1]["status"] == "stopped"
    wait(lambda: by_id(driver, "restore-button").is_enabled(), 30, "restore to be offered")
