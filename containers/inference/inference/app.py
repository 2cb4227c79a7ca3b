"""The WSGI application of the SageMaker hosting contract.

- `GET /ping`: 200 once the model is loaded (the server loads it before it listens).
- `POST /invocations`: decode (`inference.decode`) -> prepare -> batched forward
  (`inference.batching`) -> v1.5 infer body (`inference.encode`), JSON.
- `GET /stats`: the batcher's record (batch sizes); local diagnostics, not part of SageMaker's contract.

Every failure is `{"result": "Error", "message": ...}` with its status: 400 bad image or
argument, 404/405 unknown route or method, 413 body or image too large, 415 content type,
500 anything the model raised.
"""

from __future__ import annotations

import json
import logging

from inference.batching import DynamicBatcher
from inference.decode import parse_request
from inference.errors import InferenceError
from inference.predict import Predictor
from inference.settings import Settings

log = logging.getLogger(__name__)

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}
ROUTES = {"/ping": "GET", "/invocations": "POST", "/stats": "GET"}


def error_body(message: str) -> dict:
    return {"result": "Error", "message": message}


class InferenceApp:
    def __init__(self, predictor: Predictor, settings: Settings):
        self.predictor = predictor
        self.settings = settings
        self.batcher = DynamicBatcher(self._forward, settings.max_batch_size, settings.max_batch_wait_ms)

    def _forward(self, tensors: list) -> list:
        return self.predictor.forward(tensors)

    def close(self) -> None:
        self.batcher.close()

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            expected = ROUTES.get(path)
            if expected is None:
                raise InferenceError(
                    404, f"Not found: {path}; this server answers GET /ping and POST /invocations"
                )
            if method != expected and not (method == "HEAD" and expected == "GET"):
                raise InferenceError(405, f"{method} is not allowed on {path}; use {expected}")
            if path == "/ping":
                status, body = 200, {"result": "OK", "task": self.predictor.task}
            elif path == "/stats":
                status, body = 200, {"result": "OK", **self.batcher.stats()}
            else:
                status, body = 200, self.invocations(environ)
        except InferenceError as exc:
            status, body = exc.status, error_body(exc.message)
        except Exception as exc:
            log.exception("invocation failed")
            status, body = 500, error_body(f"Inference failed: {type(exc).__name__}: {exc}")
        payload = json.dumps(body).encode()
        start_response(
            f"{status} {REASONS.get(status, 'Error')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _read_body(self, environ) -> bytes:
        cap = self.settings.max_request_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise InferenceError(400, "Invalid Content-Length") from None
        if length > cap:
            raise InferenceError(413, f"The request body is {length} bytes, more than the limit of {cap}")
        stream = environ["wsgi.input"]
        return stream.read(length) if length else stream.read(cap + 1)

    def invocations(self, environ) -> dict:
        request = parse_request(
            self._read_body(environ),
            environ.get("CONTENT_TYPE"),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
            max_bytes=self.settings.max_request_bytes,
            max_pixels=self.settings.max_image_pixels,
        )
        prepared = self.predictor.prepare(request.image)
        output = self.batcher(prepared.tensor)
        return self.predictor.respond(
            request.image,
            prepared,
            output,
            request.lower_prob_thresh,
            request.upper_prob_thresh,
            request.returns_images,
        )
