"""The dashboard in a real headless browser (Debian's chromium + chromium-driver, driven by
Selenium) against the real local API. Two tiny classification jobs train once for the whole
module, side by side: a long one (watched while it runs, then stopped) and a short one with
another learning rate (its plots, compare, deploy and infer). Each test asserts what the user
sees: sign in, the icon and a clean console, the running job's curves, a checkpoint's metrics,
the log, stop, every plot the API draws, downloads, compare, the launch form's 400 beside its
field, deploy and the annotated inference result.

Screenshots of the job list, job view, compare view and launch form go to build/screenshots/
(overwritten each run, so `make test` leaves the tree clean), or to the directory
`AIFACTORY_SCREENSHOTS` names: `AIFACTORY_SCREENSHOTS=docs` refreshes the ones in docs/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.builders import DATASET_SECRET, create_payload, fast_tagger_hyperparameters
from tests.dataset_fetcher.loopback import DatasetServer
from tests.polling import wait_until as wait
from tests.servers import ApiServer, CallbackServer, tagging_records

# serial: its page waits share the machine with nothing else (make test runs it after the rest)
pytestmark = [pytest.mark.e2e, pytest.mark.serial]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AIFACTORY_CHROMIUM", "/usr/bin/chromium"))
DRIVER = Path(os.environ.get("AIFACTORY_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL = "apt-get install -y chromium chromium-driver"
V = "/api/v1.5.0"
TINY = {
    "task": "classification",
    "algorithm": "resnet18",
    "pretrained": "False",
    "batch_size": "8",
    "image_resized_width": "32",
    "image_resized_height": "32",
    "num_workers": "0",
    "num_batches_to_display": "1",
}
LONG = {**TINY, "num_epochs_to_finish": "200", "max_num_checkpoints": "2"}  # long enough to watch and stop
SHORT = {**TINY, "num_epochs_to_finish": "2", "learning_rate": "0.02"}  # differs from LONG in two arguments


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
    with ApiServer(home, extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "3"}) as server:
        try:
            yield server
        finally:
            for d in server.call("GET", f"{V}/deploy/list")[1].get("deployments", []):
                fields = {"epoch": str(d["epoch"]), "target_device_id": str(d["target_device_id"])}
                server.call("DELETE", f"{V}/deploy/{d['job_id']}", form=fields)  # its server outlives the API
            server.kill_jobs()


@pytest.fixture(scope="module")
def driver(browser_paths, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for get_log
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
def data_dir(tmp_path_factory):
    from trainer.vision.synthetic import generate

    return generate(
        tmp_path_factory.mktemp("data") / "cls", "classification", num_images=30, image_size=32, num_classes=3
    )


@pytest.fixture(scope="module")
def loopback():
    """An AI Factory job's dataset endpoint and callback receiver, for the whole module."""
    records = tagging_records(200)
    with DatasetServer(records, header=("x-api-key", DATASET_SECRET), reply="data") as dataset:
        with CallbackServer() as callback:
            yield dataset, callback


@pytest.fixture(scope="module")
def jobs(api, data_dir, loopback):
    """All three jobs start at once, before the first browser test, and train while the
    others run: two v1.5 vision jobs and a small AI Factory tagger."""
    ids = {}
    for name, form in (("long", LONG), ("short", SHORT)):
        status, body = api.call("POST", f"{V}/train", form={**form, "data_dir": str(data_dir)})
        assert status == 200, body
        ids[name] = body["job_id"]
    dataset, callback = loopback
    payload = create_payload(
        callback=callback.url, dataset=dataset.url, hyperparameters=fast_tagger_hyperparameters(steps=30)
    )
    status, body = api.call("POST", "/create_training_job", payload)
    assert status == 200, body
    ids["aif"] = body["job_name"]
    return ids


@pytest.fixture(scope="module")
def job_id(jobs):
    return jobs["long"]


@pytest.fixture(scope="module")
def finished_job(api, jobs):
    """The short job, once it has finished (it trains beside the long one from the start)."""
    wait(
        lambda: api.call("GET", f"{V}/train/{jobs['short']}")[1]["status"] == "finished", 300, "the short job"
    )
    return jobs["short"]


def screenshot(driver, name: str, height: int | None = None) -> Path:
    target = Path(os.environ.get("AIFACTORY_SCREENSHOTS") or ROOT / "build" / "screenshots")
    path = target if target.is_absolute() else ROOT / target
    path.mkdir(parents=True, exist_ok=True)
    path = path / name
    if height:  # the whole view, not just the window's first screen
        driver.set_window_size(1400, height)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
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
    status, script = api.call("GET", "/dashboard/http.js", key="", raw=True)
    assert status == 200 and b"x-api-key" in script
    for module in ("app.js", "dom.js", "charts.js", "job.js", "compare.js", "launch.js", "favicon.svg"):
        assert api.call("GET", f"/dashboard/{module}", key="", raw=True)[0] == 200, module
    assert api.call("GET", "/dashboard/nothing.js", key="")[0] == 404
    assert api.call("GET", f"{V}/devices", key="")[0] == 403  # the API itself still needs the key


def test_a_wrong_key_is_refused_and_the_right_one_signs_in(api, driver, jobs):
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


def loaded(driver, element_id) -> int:
    """The image's naturalWidth once it has loaded and shows (0 while loading, hidden or broken)."""
    return int(
        driver.execute_script(
            "const img = document.getElementById(arguments[0]);"
            "return img && img.offsetParent !== null && img.complete ? img.naturalWidth : 0",
            element_id,
        )
    )


def test_the_favicon_loads_and_the_console_stays_clean(api, driver):
    driver.get_log("browser")  # drained: the refused key above was a 403 on purpose
    driver.refresh()  # signed in still (sessionStorage): the page, its modules, icon and first refreshes
    wait(lambda: polls(driver) >= 2, 60, "two refreshes")
    width = driver.execute_async_script(
        "const done = arguments[arguments.length - 1], img = new Image();"
        "img.onload = () => done(img.naturalWidth); img.onerror = () => done(-1);"
        "img.src = document.querySelector('link[rel=icon]').href;"
    )
    assert width > 0
    assert api.call("GET", "/favicon.ico", key="", raw=True)[0] == 200  # what browsers ask for unbidden
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


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


def test_a_running_job_appears_and_its_loss_curve_grows(api, driver, job_id):
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
    assert "training loss" in query(driver, "#loss-chart", "return element.textContent")  # axis titles
    screenshot(driver, "dashboard-jobs.png")


def test_a_checkpoint_opens_with_its_metrics_and_plot(driver):
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


def _open_finished(driver, job_id):
    selector = _open(driver, job_id)
    wait(lambda: click(driver, selector), 30, "a click on the finished job")
    wait(lambda: job_id in by_id(driver, "job-title").text, 30, "the finished job's view")
    return selector


def test_the_finished_job_shows_every_plot_the_api_draws(driver, finished_job):
    _open_finished(driver, finished_job)
    wait(
        lambda: query(driver, "#hyper-parameters tr[data-param='learning_rate']"), 30, "the hyper-parameters"
    )
    assert "0.02" in query(
        driver, "#hyper-parameters tr[data-param='learning_rate']", "return element.textContent"
    )
    best = "#checkpoints tr.best button[data-epoch]"
    wait(lambda: click(driver, best), 60, "the best checkpoint")
    wait(lambda: "(best)" in by_id(driver, "checkpoint-title").text, 60, "the best checkpoint's view")
    for plot in ("metric-plot", "confusion-plot", "threshold-plot", "model-graph-plot", "loss-plot"):
        wait(lambda plot=plot: loaded(driver, plot), 90, f"the {plot}")
    assert "class" in by_id(driver, "class-metrics").text and "red" in by_id(driver, "class-metrics").text
    assert int(by_id(driver, "metric-chart").get_attribute("data-points")) == 2  # validation metric per epoch
    assert "epoch" in query(driver, "#metric-chart", "return element.textContent")
    first = by_id(driver, "threshold-plot").get_attribute("src")
    driver.execute_script(
        "const s = document.getElementById('threshold-class'); s.value = '1';"
        "s.dispatchEvent(new Event('change'))"
    )
    wait(
        lambda: (
            loaded(driver, "threshold-plot") and by_id(driver, "threshold-plot").get_attribute("src") != first
        ),
        60,
        "the first class's threshold plot",
    )
    screenshot(driver, "dashboard-job.png", height=2600)


def test_the_loss_smoothing_slider_and_point_values_on_hover(driver):
    assert not query(driver, "#loss-chart polyline.raw")  # unsmoothed by default
    driver.execute_script(
        "const s = document.getElementById('loss-smoothing'); s.value = '0.6';"
        "s.dispatchEvent(new Event('input'))"
    )
    wait(lambda: query(driver, "#loss-chart polyline.raw"), 10, "the raw curve beside the smoothed one")
    assert len(driver.find_elements("css selector", "#loss-chart polyline.line")) == 2
    title = query(driver, "#loss-chart circle title", "return element.textContent")
    assert title.startswith("report (every num_batches_to_display batches) 1: training loss "), title
    driver.execute_script(
        "const s = document.getElementById('loss-smoothing'); s.value = '0';"
        "s.dispatchEvent(new Event('input'))"
    )


def test_checkpoints_say_best_and_kept_and_download(api, driver, finished_job):
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#checkpoints tbody tr')].map(r => r.textContent)"
    )
    assert len(rows) == 2 and sum("best" in row for row in rows) == 1 and all("kept" in row for row in rows)
    assert click(driver, "#checkpoints tr.best button[data-download='model.safetensors']")
    wait(lambda: "Saved model.safetensors" in by_id(driver, "checkpoint-message").text, 60, "the weights")
    assert "MiB" in by_id(driver, "checkpoint-message").text  # several parts of 3 MiB, joined
    route = f"/dashboard/api/v15/{finished_job}/checkpoints"
    status, body = api.call("GET", f"{route}/1/model.json")
    assert status == 200 and body["task"] == "classification"
    assert api.call("GET", f"{route}/1/model.json", key="")[0] == 403
    status, body = api.call("GET", f"{route}/1/train_state.pt")
    assert status == 400 and "'name'" in body["message"]
    assert api.call("GET", f"{route}/9/model.json")[0] == 404


def test_deploy_a_checkpoint_from_its_row(driver, finished_job):
    """Right after the plots, so the model server starts while the next tests run."""
    wait(lambda: click(driver, "#checkpoints tr.best button[data-deploy]"), 30, "the deploy button")
    wait(lambda: "deployed" in by_id(driver, "checkpoint-message").text, 120, "the deployment")
    wait(
        lambda: query(driver, f"#deployments tr[data-deployment^='{finished_job}']"),
        30,
        "the deployments list",
    )
    assert query(driver, "#checkpoints tr.best button[data-deploy]", "return element.disabled")


def test_compare_overlays_runs_and_tables_the_differing_hyper_parameters(driver, jobs, finished_job):
    for name in ("long", "short"):
        selector = f"tr[data-job-key='v15:{jobs[name]}'] input.compare-tick"
        wait(lambda selector=selector: query(driver, selector), 30, "the compare boxes")
        if not query(driver, selector, "return element.checked"):
            click(driver, selector)
    assert "Compare (2)" in by_id(driver, "compare-button").text
    by_id(driver, "compare-button").click()
    wait(lambda: by_id(driver, "compare").get_attribute("data-runs") == "2", 60, "the compare view")
    params = driver.execute_script(
        "return [...document.querySelectorAll('#compare-table tr[data-param]')].map(r => r.dataset.param)"
    )
    assert {"learning_rate", "num_epochs_to_finish"} <= set(params)  # what the two forms set apart
    assert "batch_size" not in params and "momentum" not in params  # what they share is left out
    best = query(driver, "#compare-table tr[data-row='best']", "return element.textContent")
    assert best.count("accuracy") == 2
    assert by_id(driver, "compare-loss").get_attribute("data-series") == "2"
    assert by_id(driver, "compare-metric").get_attribute("data-series") == "2"
    assert "validation accuracy" in query(driver, "#compare-metric", "return element.textContent")
    screenshot(driver, "dashboard-compare.png")
    by_id(driver, "compare-all").click()
    wait(lambda: len(driver.find_elements("css selector", "#compare-table tr[data-param]")) > 2, 10, "all")


def test_the_launch_form_shows_the_apis_400_beside_the_field(api, driver, data_dir):
    before = len(api.call("GET", f"{V}/train")[1]["jobs"])
    by_id(driver, "launch-button").click()
    wait(lambda: query(driver, "#arg-batch_size"), 30, "the form built from the argument table")
    table = api.call("GET", "/openapi.json")[1]["components"]["schemas"]["V15TrainClassificationForm"]
    default = table["properties"]["batch_size"]["default"]
    assert by_id(driver, "arg-batch_size").get_attribute("placeholder") == f"default: {default}"
    assert "≥ 1" in by_id(driver, "hint-batch_size").text  # allowed values where the field is
    assert "resnet18" in by_id(driver, "arg-algorithm").text  # the table's choices
    assert query(driver, "#arg-aug_strategy")  # every argument of the table, the rarer ones folded
    by_id(driver, "arg-data_dir").send_keys(str(data_dir))
    by_id(driver, "arg-batch_size").send_keys("0")
    by_id(driver, "launch-submit").click()
    wait(lambda: by_id(driver, "err-batch_size").text, 30, "the error beside batch_size")
    assert "Invalid 'batch_size'" in by_id(driver, "err-batch_size").text
    assert "got '0'" in by_id(driver, "err-batch_size").text
    assert query(driver, ".field[data-field='batch_size']", "return element.classList.contains('invalid')")
    assert by_id(driver, "err-data_dir").text == ""
    assert len(api.call("GET", f"{V}/train")[1]["jobs"]) == before  # nothing started
    screenshot(driver, "dashboard-launch.png")


def test_the_text_tasks_form_comes_from_the_ai_factory_table_and_shows_its_400(api, driver):
    before = len(api.call("POST", "/check_trained_job", {})[1])
    driver.execute_script(
        "const s = document.getElementById('launch-task'); s.value = 'ml_tagger';"
        "s.dispatchEvent(new Event('change'))"
    )
    steps = "training_model.hyperparameters.process.train.steps"
    wait(lambda: query(driver, f"[id='arg-{steps}']"), 30, "the AI Factory form")
    hint = by_id(driver, f"hint-{steps}").text
    assert "positive integer" in hint  # the rule, from contracts/text_hyperparameters.py
    payload = create_payload()
    for name, value in {
        "callback_url.url": "http://127.0.0.1:9/callback",
        "dataset_endpoint.url": "http://127.0.0.1:9/fetch",
        "training_model.image": payload["training_model"]["image"],
        "training_model.resource.InstanceType": payload["training_model"]["resource"]["InstanceType"],
        "creator": "dashboard",
        steps: "0",
    }.items():
        by_id(driver, f"arg-{name}").send_keys(value)
    by_id(driver, "launch-submit").click()
    wait(lambda: by_id(driver, f"err-{steps}").text, 30, "the error beside process.train.steps")
    assert f"Invalid '{steps}'" in by_id(driver, f"err-{steps}").text
    assert len(api.call("POST", "/check_trained_job", {})[1]) == before  # nothing started
    by_id(driver, "launch-close").click()


def test_an_ai_factory_job_shows_steps_loss_its_callback_and_model(driver, jobs):
    selector = f"tr[data-job-key='aif:{jobs['aif']}']"
    wait(lambda: status_of(driver, selector) == "Completed", 240, "the AI Factory job to complete")
    wait(lambda: click(driver, selector), 30, "a click on the AI Factory job")
    wait(lambda: "AI Factory job" in by_id(driver, "job-title").text, 30, "its view")
    wait(lambda: "Callback delivered" in by_id(driver, "job-callback").text, 120, "the callback's outcome")
    progress = by_id(driver, "job-progress").text
    assert re.search(r"step \d+/\d+", progress) and "loss" in progress, progress
    assert int(by_id(driver, "loss-chart").get_attribute("data-points") or 0) >= 1
    assert "step" in query(driver, "#loss-chart", "return element.textContent")  # its x axis
    assert not by_id(driver, "checkpoints").is_displayed()  # no v1.5 checkpoints for a text job
    by_id(driver, "model-download").click()
    wait(lambda: "Saved" in by_id(driver, "job-message").text, 60, "the model download")
    assert "model.tar.gz" in by_id(driver, "job-message").text


def test_the_filter_box_narrows_the_job_list(driver, jobs):
    def shown():
        return by_id(driver, "jobs").get_attribute("data-shown")

    by_id(driver, "jobs-filter").send_keys("ai factory completed")
    wait(lambda: shown() == "1/3", 30, "one job left")
    assert query(driver, f"tr[data-job-key='aif:{jobs['aif']}']")
    assert not query(driver, f"tr[data-job-key='v15:{jobs['short']}']")
    assert "1 of 3 jobs match" in by_id(driver, "jobs-note").text
    driver.execute_script(
        "const box = document.getElementById('jobs-filter'); box.value = '';"
        "box.dispatchEvent(new Event('input'))"
    )
    wait(lambda: shown() == "3/3", 30, "every job again")


def test_a_link_to_a_job_opens_it(api, driver, finished_job):
    driver.execute_script("location.hash = arguments[0]", f"v15:{finished_job}")
    driver.refresh()  # the link opened anew, the key still in the tab's sessionStorage
    wait(lambda: finished_job in by_id(driver, "job-title").text, 60, "the linked job's view")
    assert query(
        driver, f"tr[data-job-key='v15:{finished_job}']", "return element.classList.contains('selected')"
    )


def test_infer_on_an_uploaded_image_shows_the_annotated_result(driver, finished_job, data_dir):
    assert finished_job in by_id(driver, "job-title").text  # opened by the link above
    image = sorted((data_dir / "images").iterdir())[0]
    by_id(driver, "infer-file").send_keys(str(image))
    wait(lambda: by_id(driver, "infer-button").is_enabled(), 30, "infer to be offered")
    by_id(driver, "infer-button").click()
    wait(lambda: loaded(driver, "infer-image"), 120, "the annotated image")
    result = by_id(driver, "infer-result").text
    assert "category" in result and "probability" in result
    assert by_id(driver, "infer-error").text == ""
