"""The callback's model link: a plain GET until it expires, the API key always."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from chalicelib import settings, wiring
from chalicelib.ports import COMPLETED
from chalicelib.services import jobs, model_links
from contracts import layout

NAME = "aif-20261130-000000-abcdef12"
MODEL = b"\x1f\x8b not really a tarball"


@pytest.fixture
def completed(client):
    svc = wiring.adapters()
    record = jobs.base_record("20261130000000-links", NAME, "ai_factory", "ml_topic")
    svc.jobs.create(
        {**record, "status": COMPLETED, "settled": True, "model_url": f"http://api/models/{NAME}"}
    )
    svc.artifacts.put_bytes(layout.job_key("20261130000000-links", layout.model_output(NAME)), MODEL)
    return svc.jobs.get("20261130000000-links")


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_signed_link_downloads_without_the_key(client, completed):
    link = model_links.signed_url(settings.current(), completed["model_url"], NAME)
    response = client.http.get(path_of(link), headers={"Accept": "*/*"})
    assert response.status_code == 200 and response.body == MODEL


@pytest.mark.parametrize("accept", [None, "application/json", "text/html, */*;q=0.1"])
def test_a_signed_link_downloads_whatever_the_accept(client, completed, accept):
    """urllib and Go's net/http send no Accept; a plain GET must download like an S3 link."""
    link = model_links.signed_url(settings.current(), completed["model_url"], NAME)
    response = client.http.get(path_of(link), headers={"Accept": accept} if accept else {})
    assert response.status_code == 200 and response.body == MODEL
    assert response.headers["Content-Type"] == "application/gzip"


def test_a_signed_link_redirects_to_the_stores_download_url_whatever_the_accept(
    client, completed, monkeypatch
):
    """On AWS the store presigns: a redirect carries no binary body, so API Gateway's Accept rule never applies."""
    presigned = "https://bucket.s3.amazonaws.com/jobs/x/model.tar.gz?X-Amz-Signature=abc"
    monkeypatch.setattr(wiring.adapters().artifacts, "download_url", lambda key: presigned)
    link = model_links.signed_url(settings.current(), completed["model_url"], NAME)
    response = client.http.get(path_of(link))
    assert response.status_code == 302 and response.headers["Location"] == presigned
    assert response.body == b""


def test_the_keyed_route_without_accept_says_what_to_send_in_the_envelope(client, completed, api_headers):
    response = client.http.get(f"/models/{NAME}", headers={"x-api-key": api_headers["x-api-key"]})
    assert response.status_code == 400
    assert response.json_body == {
        "status": "error",
        "message": "This route answers application/gzip: send `Accept: application/gzip` (or `Accept: */*`); "
        "API Gateway delivers binary bodies only to a request that accepts them.",
    }


def test_an_expired_link_says_to_use_the_key(client, completed, api_headers):
    link = model_links.signed_url(settings.current(), completed["model_url"], NAME, now=time.time() - 30 * 86400)
    response = client.http.get(path_of(link), headers={"Accept": "*/*"})
    assert response.status_code == 403
    assert response.json_body == {
        "status": "error",
        "message": f"The link expired; GET /models/{NAME} with your x-api-key instead.",
    }
    with_key = client.http.get(f"/models/{NAME}", headers={**api_headers, "Accept": "*/*"})
    assert with_key.status_code == 200 and with_key.body == MODEL


def test_a_tampered_link_is_refused(client, completed):
    link = model_links.signed_url(settings.current(), completed["model_url"], NAME)
    other = link.replace(NAME + "/signed", "aif-20261130-000000-00000000/signed")
    assert client.http.get(path_of(other), headers={"Accept": "*/*"}).status_code == 403
    forged = path_of(link)[:-4] + "0000"
    response = client.http.get(forged, headers={"Accept": "*/*"})
    assert response.status_code == 403 and "signature does not match" in response.json_body["message"]


def test_the_plain_route_still_needs_the_key(client, completed):
    assert client.http.get(f"/models/{NAME}", headers={"Accept": "*/*"}).status_code == 403


def test_links_expire_after_the_configured_days(local_stage, monkeypatch):
    from chalicelib import settings

    monkeypatch.setenv("AIFACTORY_MODEL_LINK_DAYS", "2")
    settings.reset()
    link = model_links.signed_url(settings.current(), "http://api/models/x", "x", now=1_000_000)
    assert "expires=1172800&" in link
