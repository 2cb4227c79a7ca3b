"""Errors Chalice makes itself answer in the envelope of the path's API (`chalicelib.web.api_app`).

The real app goes through chalice's test client; the class alone goes through a small app of
its own, called with API Gateway proxy events as Lambda calls it."""

from __future__ import annotations

import base64
import json

import pytest
from chalice import BadRequestError, Blueprint, Response

from chalicelib import settings
from chalicelib.web.api_app import ApiApp, any_accept

KEY = {"x-api-key": "test-api-key"}
FORM_TYPES = "application/json, application/x-www-form-urlencoded, multipart/form-data, text/plain"


# --- the real app ------------------------------------------------------------------------------
def test_an_unsupported_content_type_on_an_ai_factory_route_is_415_in_its_envelope(client):
    response = client.http.post("/status", headers={**KEY, "Content-Type": "application/xml"}, body="<a/>")
    assert response.status_code == 415
    assert response.headers["Content-Type"] == "application/json"
    assert response.json_body == {
        "status": "error",
        "message": f"Unsupported Content-Type application/xml: this route takes {FORM_TYPES}.",
    }


def test_an_unsupported_content_type_on_a_v15_route_is_415_in_its_envelope(client):
    response = client.http.post(
        "/api/v1.5.0/train", headers={**KEY, "Content-Type": "application/xml"}, body="<a/>"
    )
    assert response.status_code == 415
    assert response.json_body == {
        "result": "Error",
        "message": f"Unsupported Content-Type application/xml: this route takes {FORM_TYPES}.",
    }


def test_a_content_type_on_a_get_route_that_takes_none_is_415_naming_json(client):
    response = client.http.get("/api/v1.5.0/train", headers={**KEY, "Content-Type": "text/html"})
    assert response.status_code == 415
    assert response.json_body == {
        "result": "Error",
        "message": "Unsupported Content-Type text/html: this route takes application/json.",
    }


def test_a_method_the_path_lacks_is_405_in_the_envelope_with_allow(client):
    response = client.http.put("/status", headers=KEY, body="{}")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json_body == {"status": "error", "message": "Method PUT is not allowed here; use POST."}


def test_a_method_a_v15_path_lacks_is_405_in_the_v15_envelope(client):
    response = client.http.post("/api/v1.5.0/environment", headers=KEY, body="")
    assert response.status_code == 405
    assert response.json_body == {"result": "Error", "message": "Method POST is not allowed here; use GET."}


# --- the class alone -------------------------------------------------------------------------------
def event(method: str, resource: str, headers: dict | None, path: str | None = None) -> dict:
    path = path or resource
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} if headers else None,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"httpMethod": method, "resourcePath": resource, "path": path},
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def small():
    app = ApiApp(app_name="small")
    app.api.binary_types.append("application/gzip")
    bp = Blueprint(__name__)

    @bp.route("/api/refused")
    def refused():
        raise BadRequestError("no such thing")

    @bp.route("/unserializable")
    def unserializable():
        return Response(body="text, not bytes", headers={"Content-Type": "application/gzip"})

    @bp.route("/looks-like-an-error")
    def looks_like_an_error():
        return {"Code": "Fine", "Message": "a 200 is never rewritten"}

    @bp.route("/file")
    def file():
        return Response(body=b"\x1f\x8b", headers={"Content-Type": "application/gzip"})

    @bp.route("/download")
    @any_accept
    def download():
        return Response(body=b"\x1f\x8b", headers={"Content-Type": "application/gzip"})

    @bp.route("/broken-middleware")
    def broken_middleware():
        return {}

    app.register_blueprint(bp)

    @app.middleware("http")
    def explode(request, get_response):
        if request.path == "/broken-middleware":
            raise RuntimeError("a bug in a middleware")
        return get_response(request)

    return app


def body_of(response: dict) -> dict:
    assert response["headers"]["Content-Type"] == "application/json" and not response.get("isBase64Encoded")
    return json.loads(response["body"])


def test_a_chalice_view_error_keeps_its_status_in_the_paths_envelope(small, local_stage):
    response = small(event("GET", "/api/refused", {}), None)
    assert response["statusCode"] == 400
    assert body_of(response) == {"result": "Error", "message": "no such thing"}


def test_an_exception_in_a_middleware_is_500_in_the_envelope(small, local_stage):
    response = small(event("GET", "/broken-middleware", {}), None)
    assert response["statusCode"] == 500
    assert body_of(response) == {
        "status": "error",
        "message": "Internal error; the server log has the details.",
    }


def test_a_body_chalice_cannot_serialize_is_500_in_the_envelope_not_a_lambda_error(small, local_stage):
    response = small(event("GET", "/unserializable", {"accept": "application/gzip"}), None)
    assert response["statusCode"] == 500
    assert body_of(response) == {
        "status": "error",
        "message": "Internal error; the server log has the details.",
    }


def test_a_success_body_is_never_rewritten(small, local_stage):
    response = small(event("GET", "/looks-like-an-error", {}), None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"Code": "Fine", "Message": "a 200 is never rewritten"}


def test_null_headers_from_api_gateway_are_a_request_without_headers(small, local_stage):
    response = small(event("GET", "/looks-like-an-error", None), None)
    assert response["statusCode"] == 200


def test_a_binary_answer_to_a_request_without_accept_is_400_in_the_envelope(small, local_stage):
    response = small(event("GET", "/file", {}), None)
    assert response["statusCode"] == 400
    assert body_of(response) == {
        "status": "error",
        "message": "This route answers application/gzip: send `Accept: application/gzip` (or `Accept: */*`); "
        "API Gateway delivers binary bodies only to a request that accepts them.",
    }


@pytest.mark.parametrize("accept", [None, "application/json", "text/html"])
def test_an_any_accept_route_on_the_local_stage_serves_its_bytes_whatever_the_accept(
    small, local_stage, accept
):
    response = small(event("GET", "/download", {"Accept": accept} if accept else {}), None)
    assert response["statusCode"] == 200 and response["isBase64Encoded"]
    assert base64.b64decode(response["body"]) == b"\x1f\x8b"


def test_an_any_accept_route_on_an_aws_stage_keeps_api_gateways_rule(small, local_stage, monkeypatch):
    monkeypatch.setenv("AIFACTORY_STAGE", "dev")
    settings.reset()
    response = small(event("GET", "/download", {"Accept": "application/json"}), None)
    assert response["statusCode"] == 400
    assert body_of(response)["message"].startswith("This route answers application/gzip: send `Accept:")
