"""Callback delivery against real loopback receivers: retries, signature, no redirects, no raising."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest

from callbacks.delivery import deliver, deliver_once
from tests.callbacks.loopback import FakeDns, Receiver, Step, closed_port

KEY = "whsec-test-signing-key"
PAYLOAD = {"status": "Completed", "job_name": "job-1", "log": {"avg": {"f1-score": "0.90"}}}
SECRET = "Bearer s3cr3t-callback-token"


@pytest.fixture
def sleeps():
    return []


def send(url, sleeps, headers=None, **kw):
    kw.setdefault("idempotency_key", "job-1:Completed")
    kw.setdefault("allow_private", True)
    return deliver(url, PAYLOAD, headers, sleep=sleeps.append, **kw)


def test_delivers_once_with_key_body_and_caller_headers(sleeps):
    with Receiver() as receiver:
        result = send(receiver.url, sleeps, {"Authorization": SECRET})
    assert (result.delivered, result.attempts, result.status, result.error) == (True, 1, 200, "")
    [call] = receiver.calls
    assert call.path == "/hooks/training"
    assert json.loads(call.body) == PAYLOAD
    assert call.headers["idempotency-key"] == "job-1:Completed"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["authorization"] == SECRET
    assert sleeps == []


def test_signature_verifies_with_hmac_over_the_exact_body(sleeps):
    with Receiver() as receiver:
        assert send(receiver.url, sleeps, signing_key=KEY).delivered
    [call] = receiver.calls
    scheme, digest = call.headers["x-aifactory-signature"].split("=", 1)
    expected = hmac.new(KEY.encode(), call.body, hashlib.sha256).hexdigest()
    assert scheme == "sha256" and hmac.compare_digest(digest, expected)


def test_caller_cannot_forge_the_signature_or_the_key(sleeps):
    forged = {"X-AIFactory-Signature": "sha256=forged", "idempotency-key": "other", "content-type": "text/x"}
    with Receiver() as receiver:
        assert send(receiver.url, sleeps, forged, signing_key=KEY).delivered
    [call] = receiver.calls
    assert call.headers["x-aifactory-signature"] != "sha256=forged"
    assert call.headers["idempotency-key"] == "job-1:Completed"
    assert call.headers["content-type"] == "application/json"


def test_no_signature_header_without_a_key(sleeps):
    with Receiver() as receiver:
        assert send(receiver.url, sleeps).delivered
    assert "x-aifactory-signature" not in receiver.calls[0].headers


def test_5xx_is_retried_with_backoff_and_the_same_key(sleeps):
    with Receiver([500, 502, 503]) as receiver:
        result = send(receiver.url, sleeps, backoff=0.5)
    assert (result.delivered, result.attempts, result.status) == (True, 4, 200)
    assert sleeps == [0.5, 1.0, 2.0]
    assert {c.headers["idempotency-key"] for c in receiver.calls} == {"job-1:Completed"}
    assert len({c.body for c in receiver.calls}) == 1


def test_retry_after_is_honoured_and_capped(sleeps):
    script = [Step(503, {"Retry-After": "4"}), Step(429, {"Retry-After": "3600"})]
    with Receiver(script) as receiver:
        result = send(receiver.url, sleeps, backoff=0.5, max_backoff=30)
    assert result.delivered and result.attempts == 3
    assert sleeps == [4.0, 30.0]


def test_gives_up_after_the_attempts_and_says_why(sleeps, caplog):
    with Receiver([500] * 10) as receiver, caplog.at_level(logging.WARNING, "aifactory.callbacks"):
        result = send(receiver.url, sleeps, {"Authorization": SECRET}, attempts=3, backoff=0.25)
    assert (result.delivered, result.attempts, result.status) == (False, 3, 500)
    assert result.error == "HTTP 500 Internal Server Error"
    assert result.retryable
    assert len(receiver.calls) == 3 and sleeps == [0.25, 0.5]
    assert SECRET not in caplog.text


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_4xx_is_not_retried(sleeps, status):
    with Receiver([status]) as receiver:
        result = send(receiver.url, sleeps)
    assert (result.delivered, result.attempts, result.status, result.retryable) == (False, 1, status, False)
    assert len(receiver.calls) == 1 and sleeps == []


def test_timeouts_are_retried(sleeps):
    with Receiver([Step(200, delay=2.0)]) as receiver:
        result = send(receiver.url, sleeps, timeout=0.3, backoff=0.1)
    assert (result.delivered, result.attempts) == (True, 2)
    assert sleeps == [0.1]


def test_connection_refused_is_retried_then_reported(sleeps):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    result = send(url, sleeps, attempts=3, backoff=0.1)
    assert (result.delivered, result.attempts, result.status) == (False, 3, None)
    assert result.retryable and "connection failed" in result.error and "refused" in result.error.lower()
    assert sleeps == [0.1, 0.2]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_a_failed_attempt_and_never_followed(sleeps, status):
    with Receiver() as elsewhere, Receiver([Step(status, {"Location": elsewhere.url})]) as receiver:
        result = send(receiver.url, sleeps, {"Authorization": SECRET})
    assert (result.delivered, result.attempts, result.status) == (False, 1, status)
    assert "redirects are not followed" in result.error
    assert len(receiver.calls) == 1
    assert elsewhere.calls == []  # the caller's secret header reached no other host


@pytest.mark.parametrize(
    ("url", "headers", "payload", "problem"),
    [
        ("http://127.0.0.1:9/a\tb", None, PAYLOAD, "callback URL refused: contains whitespace"),
        (
            "http://127.0.0.1:18732\\@93.184.216.34/",
            None,
            PAYLOAD,
            "callback URL refused: contains a backslash",
        ),
        ("http://user:pw@127.0.0.1:9/", None, PAYLOAD, "callback URL refused: must not contain credentials"),
        ("ftp://127.0.0.1/", None, PAYLOAD, "callback URL refused: must be an http or https URL"),
        (None, None, PAYLOAD, "callback URL refused: must be a non-empty URL string"),
        ("http://169.254.169.254/", None, PAYLOAD, "callback URL refused: points to a forbidden address"),
        ("{url}", {"X-Bad:Name": "v"}, PAYLOAD, "callback headers refused: header name 'X-Bad:Name'"),
        ("{url}", {"X-Key": SECRET + "\r\nX-Injected: 1"}, PAYLOAD, "header 'X-Key' contains a line break"),
        ("{url}", {"X-Key": "价值"}, PAYLOAD, "header 'X-Key' has a character outside latin-1"),
        ("{url}", {"Content-Length": "0"}, PAYLOAD, "header 'Content-Length' is set by the sender"),
        ("{url}", ["not", "a", "dict"], PAYLOAD, "callback headers refused: must be an object"),
        ("{url}", {"X-Key": 5}, PAYLOAD, "must map header names to string values"),
        ("{url}", None, {"not json": object()}, "callback body cannot be sent"),
    ],
)
def test_bad_input_returns_a_failed_result_and_never_raises(
    sleeps, connections, url, headers, payload, problem
):
    with Receiver() as receiver:
        result = deliver(
            url.format(url=receiver.url) if url else url,
            payload,
            headers,
            idempotency_key="k",
            sleep=sleeps.append,
            allow_private=True,
        )
    assert (result.delivered, result.attempts, result.status) == (False, 0, None)
    assert problem in result.error
    assert SECRET not in result.error
    assert receiver.calls == [] and connections == []


def test_private_receiver_refused_when_the_stage_forbids_it(sleeps, connections):
    with Receiver() as receiver:
        result = send(receiver.url, sleeps, allow_private=False)
    assert not result.delivered and result.attempts == 0
    assert "non-global address (127.0.0.1)" in result.error
    assert receiver.calls == [] and connections == []


def test_stage_default_comes_from_the_environment(sleeps, monkeypatch):
    monkeypatch.delenv("AIFACTORY_ALLOW_PRIVATE_URLS", raising=False)
    monkeypatch.delenv("AIFACTORY_STAGE", raising=False)
    with Receiver() as receiver:
        refused = deliver(receiver.url, PAYLOAD, idempotency_key="k", sleep=sleeps.append)
        monkeypatch.setenv("AIFACTORY_STAGE", "local")
        allowed = deliver(receiver.url, PAYLOAD, idempotency_key="k", sleep=sleeps.append)
    assert not refused.delivered and "non-global" in refused.error
    assert allowed.delivered and len(receiver.calls) == 1


def test_dns_rebinding_to_loopback_is_refused_at_connect_time(sleeps, monkeypatch, connections):
    # Public when the URL is checked, loopback when the connection is made.
    dns = FakeDns(monkeypatch, {"hooks.example.com": [["93.184.216.34"], ["127.0.0.1"]]})
    with Receiver() as receiver:
        url = f"http://hooks.example.com:{receiver.port}/hook"
        result = send(url, sleeps, allow_private=False)
    assert not result.delivered and result.attempts == 1
    assert "refused at connect time" in result.error and "127.0.0.1" in result.error
    assert dns.lookups == ["hooks.example.com", "hooks.example.com"]
    assert receiver.calls == [] and connections == []


def test_connects_to_the_checked_address_keeping_the_host_header(sleeps, monkeypatch, connections):
    FakeDns(monkeypatch, {"hooks.internal.test": [["127.0.0.1"]]})
    with Receiver() as receiver:
        result = send(f"http://hooks.internal.test:{receiver.port}/hook", sleeps, allow_private=True)
    assert result.delivered
    assert receiver.calls[0].headers["host"] == f"hooks.internal.test:{receiver.port}"
    assert connections == [("127.0.0.1", receiver.port)]


def test_deliver_once_makes_one_attempt_and_reports_when_to_retry():
    with Receiver([Step(503, {"Retry-After": "7"}), 400]) as receiver:
        transient = deliver_once(receiver.url, PAYLOAD, idempotency_key="k", allow_private=True)
        permanent = deliver_once(receiver.url, PAYLOAD, idempotency_key="k", allow_private=True)
        ok = deliver_once(receiver.url, PAYLOAD, idempotency_key="k", allow_private=True)
    assert (transient.delivered, transient.attempts, transient.status) == (False, 1, 503)
    assert transient.error == "HTTP 503 Service Unavailable"
    assert transient.retryable and transient.retry_after == 7.0
    assert (permanent.retryable, permanent.status) == (False, 400)
    assert ok.delivered and len(receiver.calls) == 3


def test_deliver_once_without_a_reply_is_retryable():
    result = deliver_once(
        f"http://127.0.0.1:{closed_port()}/", PAYLOAD, idempotency_key="k", allow_private=True
    )
    assert (result.delivered, result.attempts, result.status, result.retryable) == (False, 1, None, True)
