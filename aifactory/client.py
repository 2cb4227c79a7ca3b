"""`aifactory.Client`: one method per route of both APIs, typed errors, retried reads.

Built on `requests` with urllib3's `Retry`: idempotent GETs are retried on connection
errors and 502/503/504 with backoff; writes are sent once (a retried POST could start a
second job). Every method returns the decoded body the spec documents (minus nothing:
the `result`/`status` fields stay, so what you see is what the API said).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from aifactory import errors

V15 = "/api/v1.5.0"
# v1.5 job ids are `YYYYmmddHHMMSS-<uuid4>` (the spec's examples also use bare numbers);
# anything else is an AI Factory job name.
_V15_JOB_ID = re.compile(r"^(\d{14}-[0-9a-fA-F-]{36}|\d+)$")
DEFAULT_TIMEOUT = (5.0, 60.0)  # connect, read


def is_v15_job(job: str) -> bool:
    """Whether `job` is a v1.5 job id (else it is an AI Factory job name)."""
    return bool(_V15_JOB_ID.match(job))


def form_value(value: Any) -> str:
    """A Python value as the v1.5 API reads form arguments: `True`, `None`, `[16, 32]`, `(0.5, (0, 1))`."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float | list | tuple):
        return repr(value) if not isinstance(value, float) else str(value)
    return str(value)


class Client:
    """The AI Factory API at `base_url` (e.g. `http://127.0.0.1:8000` or an API Gateway stage URL).

    >>> client = Client("http://127.0.0.1:8000", "my-key")
    >>> job_id = client.train("classification", "/data/cats", algorithm="resnet18", pretrained=False)
    >>> client.monitor(job_id)["status"]
    'initializing'
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 3,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.session = session or requests.Session()
        self.tool_attempts = 40  # 503 "retry" answers waited out per tool/plot call (call_retrying)
        self.tool_wait_cap = 15.0
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "aifactory-client"
        if api_key:
            self.session.headers["x-api-key"] = api_key

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, Any] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        stream: bool = False,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """One call; a typed error for anything but a 2xx/3xx answer."""
        url = self.base_url + path
        data = {k: form_value(v) for k, v in form.items()} if form is not None else None
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                json=json,
                params=params,
                timeout=self.timeout,
                stream=stream,
                allow_redirects=allow_redirects,
            )
        except requests.ConnectionError as exc:
            raise errors.ConnectionFailed(
                f"cannot reach {self.base_url}: {_reason(exc)}", None, method, url
            ) from None
        except requests.Timeout:
            raise errors.ConnectionFailed(
                f"{self.base_url} did not answer in time", None, method, url
            ) from None
        except requests.RequestException as exc:
            raise errors.ConnectionFailed(f"request to {url} failed: {exc}", None, method, url) from None
        if response.status_code >= 400:
            body = _body(response)
            response.close()
            error = errors.for_response(response.status_code, body, method, url)
            error.retry_after = _retry_after(response.headers.get("Retry-After"))
            raise error
        return response

    def call_retrying(self, method: str, path: str, **kwargs: Any) -> Any:
        """`call`, waiting out 503 "still being computed; retry" answers (`Retry-After`), as the
        dashboard does: at most `tool_attempts` tries, each wait at most `tool_wait_cap` seconds.
        Tool and plot routes answer so while their work goes on; a retry gets the cached answer."""
        for attempt in range(1, self.tool_attempts + 1):
            try:
                return self.call(method, path, **kwargs)
            except errors.ServerError as exc:
                if exc.status != 503 or exc.retry_after is None or attempt == self.tool_attempts:
                    raise
                time.sleep(min(exc.retry_after, self.tool_wait_cap))
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """`request` and decode: JSON bodies as Python values, anything else as text."""
        response = self.request(method, path, **kwargs)
        body = _body(response)
        if errors.api_message(body) is not None:  # an older server answers errors with 200
            raise errors.for_response(response.status_code, body, method, response.url)
        return body

    # --- v1.5: service ---------------------------------------------------------------------
    def version(self) -> str:
        return str(self.call("GET", "/api/version")).strip()

    def environment(self) -> dict[str, Any]:
        return self.call("GET", f"{V15}/environment")

    def devices(self) -> dict[str, Any]:
        return self.call("GET", f"{V15}/devices")

    # --- v1.5: training --------------------------------------------------------------------
    def train(self, task: str, data_dir: str, **args: Any) -> str:
        """Starts a v1.5 training job and returns its job id. `args` are any v1.5 train arguments."""
        body = self.call("POST", f"{V15}/train", form={"task": task, "data_dir": data_dir, **args})
        return body["job_id"]

    def stop(self, job_id: str) -> dict[str, Any]:
        return self.call("PATCH", _job(job_id))

    def restore(self, job_id: str) -> dict[str, Any]:
        return self.call("PUT", _job(job_id))

    def clear(self, job_id: str) -> dict[str, Any]:
        return self.call("DELETE", _job(job_id))

    def monitor(self, job_id: str) -> dict[str, Any]:
        """The heartbeat: status, epoch, batch, avg_loss, learning_rate, samples_per_sec, eta_hr, exception."""
        return self.call("GET", _job(job_id))

    def hyper_parameters(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", _job(job_id) + "/hyper-parameters")["hyper-parameters"]

    def losses(self, job_id: str) -> list[float]:
        return self.call("GET", _job(job_id) + "/losses")["losses"]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return self.checkpoint_listing(job_id)["checkpoints"]

    def checkpoint_listing(self, job_id: str) -> dict[str, Any]:
        """`{"checkpoints": [...], "disk_bytes": <bytes the job holds>}`."""
        return self.call("GET", _job(job_id) + "/checkpoints")

    def reclaim(self, job_id: str) -> dict[str, Any]:
        """Frees a finished job's space: `{"freed_bytes", "disk_bytes", "removed"}`."""
        return self.call("POST", _job(job_id) + "/reclaim")

    def checkpoint(self, job_id: str, epoch: int) -> dict[str, Any]:
        return self.call("GET", _job(job_id) + f"/checkpoints/epoch/{int(epoch)}")["checkpoint"]

    def jobs(self, limit: int | None = None, next_token: str | None = None) -> dict[str, Any]:
        """One page of v1.5 jobs, newest first (`GET /api/v1.5.0/train`):
        `{"jobs": [{job_id, task, status, epoch, total_epoch, created_at}], "next_token"}`."""
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if next_token:
            params["next_token"] = next_token
        return self.call("GET", f"{V15}/train", params=params)

    def iter_jobs(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every v1.5 job, newest first, page after page."""
        token: str | None = None
        while True:
            page = self.jobs(page_size, token)
            yield from page.get("jobs") or []
            token = page.get("next_token")
            if not token:
                return

    # --- v1.5: plots and tools (503 "retry" answers are waited out) ----------------------
    def plot_model_graph(self, job_id: str) -> bytes:
        """The model graph as JPEG bytes."""
        return _image(
            self.call_retrying("GET", _job(job_id) + "/plots/model-graph"), "base64_model_graph_plot"
        )

    def plot_loss(self, job_id: str) -> bytes:
        return _image(self.call_retrying("GET", _job(job_id) + "/plots/loss"), "base64_loss_plot")

    def plot_confusion_matrix(self, job_id: str, epoch: int) -> bytes:
        body = self.call_retrying("GET", _job(job_id) + f"/plots/confusion-matrix/epoch/{int(epoch)}")
        return _image(body, "base64_confusion_matrix_plot")

    def plot_threshold(self, job_id: str, epoch: int, class_index: int) -> bytes:
        path = _job(job_id) + f"/plots/threshold/epoch/{int(epoch)}/class/{int(class_index)}"
        return _image(self.call_retrying("GET", path), "base64_threshold_plot")

    def summarize(self, job_id: str, task: str, epoch: int) -> dict[str, Any]:
        """A checkpoint's `flops`, `params` and `param_keys` (the names `visualize` takes)."""
        form = {"task": task, "epoch": epoch}
        return self.call_retrying("POST", f"{V15}/summarize/{quote(job_id, safe='')}", form=form)

    def visualize(self, job_id: str, task: str, epoch: int, param_key: str) -> bytes:
        """One parameter of a checkpoint drawn as a JPEG."""
        form = {"task": task, "epoch": epoch, "param_key": param_key}
        body = self.call_retrying("POST", f"{V15}/visualize/{quote(job_id, safe='')}", form=form)
        return _image(body, "base64_image")

    def aug_preview(self, task: str, data_dir: str, index: int = 0, **args: Any) -> bytes:
        """Image `index` of `data_dir` augmented with `args` (any aug_* argument), as a JPEG."""
        form = {"task": task, "data_dir": data_dir, "index": index, **args}
        return _image(self.call_retrying("POST", f"{V15}/aug", form=form), "base64_aug_image")

    def infer_multiple(
        self, job_id: str, task: str, epoch: int, patterns: list[str], **args: Any
    ) -> dict[str, Any]:
        """Infers the server-side images the glob `patterns` match: `{"images": [{"path", ...}]}`."""
        form = {"task": task, "epoch": epoch, "path_to_image_pattern_list": list(patterns), **args}
        return self.call_retrying("POST", f"{V15}/infer_multiple/{quote(job_id, safe='')}", form=form)

    # --- v1.5: serving -------------------------------------------------------------------------
    def deployments(self) -> list[dict[str, Any]]:
        return self.call("GET", f"{V15}/deploy/list")["deployments"]

    def deploy(self, job_id: str, task: str, epoch: int, target_device_id: int = -1) -> dict[str, Any]:
        form = {"task": task, "epoch": epoch, "target_device_id": target_device_id}
        return self.call("POST", f"{V15}/deploy/{quote(job_id, safe='')}", form=form)

    def undeploy(self, job_id: str, epoch: int, target_device_id: int = -1) -> dict[str, Any]:
        form = {"epoch": epoch, "target_device_id": target_device_id}
        return self.call("DELETE", f"{V15}/deploy/{quote(job_id, safe='')}", form=form)

    def infer(
        self,
        job_id: str,
        task: str,
        epoch: int,
        image: str | Path | bytes | None = None,
        path_to_image: str | None = None,
        **args: Any,
    ) -> dict[str, Any]:
        """Infers one image: `image` (a local file or its bytes, sent as `base64_image`) or
        `path_to_image` (a path the server can read)."""
        form: dict[str, Any] = {"task": task, "epoch": epoch, **args}
        if image is not None:
            data = image if isinstance(image, bytes) else Path(image).read_bytes()
            form["base64_image"] = base64.b64encode(data).decode()
        if path_to_image is not None:
            form["path_to_image"] = path_to_image
        return self.call("POST", f"{V15}/infer/{quote(job_id, safe='')}", form=form)

    # --- AI Factory API ------------------------------------------------------------------------
    def create_training_job(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """`POST /create_training_job` with the spec's payload; returns `{"status", "job_name"}`."""
        return self.call("POST", "/create_training_job", json=dict(payload))

    def check_trained_job(self) -> list[dict[str, Any]]:
        """Every AI Factory job: TrainingJobStatus, TrainingJobName, CreationTime[, TrainingEndTime]."""
        return self.call("POST", "/check_trained_job", json={})

    def status(self, job_name: str) -> dict[str, Any]:
        """`{"status": <SageMaker status>[, "message": <failure reason>]}`."""
        return self.call("POST", "/status", json={"job_name": job_name})

    def stop_training_job(self, job_name: str) -> dict[str, Any]:
        return self.call("POST", "/stop_training_job", json={"job_name": job_name})

    # --- keys (tenants): the stage's own key or an admin key ---------------------------------
    def create_key(
        self, name: str, admin: bool = False, quotas: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A new tenant and its API key (`api_key`, shown this once)."""
        body = {"name": name, "admin": admin, "quotas": dict(quotas or {})}
        return self.call("POST", "/tenants", json=body)

    def keys(self) -> list[dict[str, Any]]:
        return self.call("GET", "/tenants")["tenants"]

    def revoke_key(self, tenant_id: str) -> dict[str, Any]:
        return self.call("DELETE", f"/tenants/{quote(tenant_id, safe='')}")

    def download_model(self, job_name: str, destination: str | Path) -> Path:
        """Saves the job's model.tar.gz (`GET /models/<job_name>`) into the directory `destination`
        (or to that file name when it is not a directory); returns the file written.

        A redirect (S3 presigned on AWS) is followed without the API key: the link carries its own
        signature and the key must not travel to another host.
        """
        response = self.request(
            "GET", f"/models/{quote(job_name, safe='')}", stream=True, allow_redirects=False
        )
        if response.is_redirect:
            location = response.headers["Location"]
            response.close()
            try:
                response = requests.get(location, stream=True, timeout=self.timeout)
            except requests.RequestException as exc:
                raise errors.ConnectionFailed(f"cannot download {job_name}: {_reason(exc)}") from None
            if response.status_code >= 400:
                raise errors.for_response(response.status_code, _body(response), "GET", location)
        target = Path(destination)
        if target.is_dir() or str(destination).endswith(("/", "\\")):
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{job_name}-model.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with response, open(partial, "wb") as handle:
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
        partial.replace(target)
        return target

    # --- both APIs ---------------------------------------------------------------------------
    def logs(
        self, job: str, offset: int = 0, limit: int | None = None, metrics: bool = False
    ) -> dict[str, Any]:
        """A page of the job's stdout/stderr: `{"lines", "offset", "next_offset", "complete"}`.
        The `#metric` lines only with `metrics`; offsets count every line either way.

        v1.5 job ids use `GET /api/v1.5.0/train/<job_id>/logs`, AI Factory job names `POST /logs`.
        """
        if is_v15_job(job):
            params = {"offset": offset} | ({"limit": limit} if limit is not None else {})
            if metrics:
                params["metrics"] = "true"
            return self.call("GET", _job(job) + "/logs", params=params)
        body: dict[str, Any] = {"job_name": job, "offset": offset}
        if limit is not None:
            body["limit"] = limit
        if metrics:
            body["metrics"] = True
        return self.call("POST", "/logs", json=body)

    def iter_logs(
        self, job: str, offset: int = 0, limit: int | None = None, metrics: bool = False
    ) -> Iterator[str]:
        """Every line already written from `offset` on: pages until the log is complete or no
        new line has come (a page may show no line yet move past metric lines)."""
        while True:
            page = self.logs(job, offset, limit, metrics)
            yield from page["lines"]
            if page["next_offset"] == offset or page.get("complete"):
                return
            offset = page["next_offset"]


def _job(job_id: str) -> str:
    return f"{V15}/train/{quote(job_id, safe='')}"


def _image(body: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(body[key])


def _retry_after(value: str | None) -> float | None:
    """Seconds of a `Retry-After` header (its delta-seconds form); None without one."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _body(response: requests.Response) -> Any:
    ctype = response.headers.get("Content-Type", "")
    text = response.text
    if "json" in ctype or text[:1] in ("{", "["):
        try:
            return response.json()
        except ValueError:
            return text
    return text


def _reason(exc: BaseException) -> str:
    """The innermost cause, e.g. `connection refused`, not urllib3's nested repr."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("timed out", "timed out"),
        ("Max retries exceeded", "no answer after retries"),
    ):
        if needle in text:
            return reason
    return text.splitlines()[0][:200] if text else type(exc).__name__
