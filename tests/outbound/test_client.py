"""The outbound client on loopback: checked connections (DNS rebinding, TLS name kept),
no redirects, urllib3 Retry with the project's schedule. Names go to a fake resolver and
every connect is checked to be 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outbound import AddressRefused, Client, Unreachable
from outbound.addresses import embedded_ipv4
from tests.callbacks.loopback import FakeDns, Receiver, Step, closed_port, guard_loopback
from tests.servers import LoopbackServer

PUBLIC = "93.184.216.34"


@pytest.fixture
def connections(monkeypatch):
    return guard_loopback(monkeypatch)


@pytest.fixture
def sleeps():
    return []


def test_rebinding_to_loopback_is_refused_before_connecting(monkeypatch, connections):
    dns = FakeDns(monkeypatch, {"data.example.com": [[PUBLIC], ["127.0.0.1"]]})
    with Receiver() as receiver:
        client = Client(f"http://data.example.com:{receiver.port}/", allow_private=False)
        assert [str(a) for a in client.target.addresses] == [PUBLIC]
        with pytest.raises(AddressRefused) as info:
            client.post(b"{}", {})
    assert info.value.problem == (
        "refused at connect time: has the host 'data.example.com', which points to a private, "
        "loopback or other non-global address (127.0.0.1), not allowed here"
    )
    assert dns.lookups == ["data.example.com", "data.example.com"]
    assert connections == [] and receiver.calls == []


@pytest.mark.parametrize(
    "answer",
    [[PUBLIC, "127.0.0.1"], ["10.1.2.3"], ["::ffff:127.0.0.1"], ["64:ff9b::a00:1"], ["2002:a00:1::"]],
)
def test_every_address_at_connect_time_must_pass(monkeypatch, connections, answer):
    FakeDns(monkeypatch, {"data.example.com": [[PUBLIC], answer]})
    client = Client("http://data.example.com/", allow_private=False)
    with pytest.raises(AddressRefused, match="refused at connect time"):
        client.post(b"{}", {})
    assert connections == []


def test_metadata_at_connect_time_is_refused_even_where_private_is_allowed(monkeypatch, connections):
    FakeDns(monkeypatch, {"data.internal.test": [["127.0.0.1"], ["169.254.169.254"]]})
    client = Client("http://data.internal.test/", allow_private=True)
    with pytest.raises(AddressRefused, match=r"forbidden address \(169.254.169.254"):
        client.post(b"{}", {})
    assert connections == []


def test_connects_to_the_checked_address_with_the_original_host_header(monkeypatch, connections):
    FakeDns(monkeypatch, {"data.internal.test": [["127.0.0.1"]]})
    with Receiver() as receiver:
        with Client(f"http://data.internal.test:{receiver.port}/v1/pages?x=1", allow_private=True) as client:
            replies = [client.post(b"{}", {"X-Key": "v"}) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 200]
    assert [c.path for c in receiver.calls] == ["/v1/pages?x=1"] * 3
    assert {c.headers["host"] for c in receiver.calls} == {f"data.internal.test:{receiver.port}"}
    assert connections == [("127.0.0.1", receiver.port)]  # one kept-alive connection, to the checked IP


def test_redirect_comes_back_as_a_reply_and_is_not_followed(connections):
    with Receiver() as elsewhere, Receiver([Step(302, {"Location": elsewhere.url})]) as receiver:
        reply = Client(receiver.url, allow_private=True).post(b"{}", {"Authorization": "secret"})
    assert (reply.status, reply.redirect, reply.attempts) == (302, True, 1)
    assert reply.headers["Location"] == elsewhere.url
    assert len(receiver.calls) == 1 and elsewhere.calls == []


def test_retry_statuses_backoff_and_history(connections, sleeps):
    reports = []
    with Receiver([500, Step(503, {"Retry-After": "soon"}), 429]) as receiver:
        client = Client(receiver.url, allow_private=True, backoff=0.5, retries=5)
        reply = client.post(b"{}", {}, sleep=sleeps.append, on_retry=lambda *a: reports.append(a))
    assert (reply.status, reply.attempts) == (200, 4)
    assert sleeps == [0.5, 1.0, 2.0]  # an unreadable Retry-After falls back to the backoff
    assert [r[:3] for r in reports] == [(1, 6, 0.5), (2, 6, 1.0), (3, 6, 2.0)]
    assert reply.history == [
        "HTTP 500 Internal Server Error",
        "HTTP 503 Service Unavailable",
        "HTTP 429 Too Many Requests",
    ]


def test_retry_after_as_an_http_date(connections, sleeps):
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    with Receiver([Step(503, {"Retry-After": past})]) as receiver:
        reply = Client(receiver.url, allow_private=True).post(b"{}", {}, sleep=sleeps.append)
    assert reply.status == 200 and sleeps == [0.0]


def test_status_outside_the_retry_list_is_returned_at_once(connections, sleeps):
    with Receiver([503]) as receiver:
        reply = Client(receiver.url, allow_private=True, retry_statuses=frozenset({500})).post(
            b"{}", {}, sleep=sleeps.append
        )
    assert (reply.status, reply.attempts, reply.retry_after) == (503, 1, None)
    assert sleeps == []


def test_no_reply_raises_unreachable_after_the_attempts(connections, sleeps):
    client = Client(f"http://127.0.0.1:{closed_port()}/", allow_private=True, retries=2, backoff=0.1)
    with pytest.raises(Unreachable) as info:
        client.post(b"{}", {}, sleep=sleeps.append)
    assert info.value.attempts == 3
    assert info.value.cause == "connection failed: ConnectionRefusedError: [Errno 111] Connection refused"
    assert sleeps == [0.1, 0.2]


def test_read_timeout_is_described_with_the_limit(connections, sleeps):
    with Receiver([Step(200, delay=2.0)]) as receiver:
        client = Client(receiver.url, allow_private=True, timeout=0.2, retries=0)
        with pytest.raises(Unreachable) as info:
            client.post(b"{}", {}, sleep=sleeps.append)
    assert (info.value.cause, info.value.attempts) == ("timed out after 0.2 s", 1)


# TLS: the connection goes to 127.0.0.1, but SNI and the certificate check use the name.


def _certificate(tmp_path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_server(tmp_path):
    cert, key = _certificate(tmp_path, "hooks.example.test")
    seen_sni: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.send_header("X-Host", self.headers.get("Host", ""))
            self.end_headers()

    server = LoopbackServer(Handler)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        yield server.port, cert, seen_sni


def test_tls_keeps_the_name_for_sni_and_the_certificate(monkeypatch, connections, tls_server):
    port, cert, seen_sni = tls_server
    FakeDns(monkeypatch, {"hooks.example.test": [["127.0.0.1"]]})
    client = Client(f"https://hooks.example.test:{port}/hook", allow_private=True, ca_certs=cert)
    reply = client.post(b"{}", {})
    assert reply.status == 204 and reply.headers["X-Host"] == f"hooks.example.test:{port}"
    assert seen_sni == ["hooks.example.test"]
    assert connections == [("127.0.0.1", port)]


def test_tls_certificate_for_another_name_is_refused(monkeypatch, connections, tls_server):
    port, cert, _ = tls_server
    FakeDns(monkeypatch, {"other.example.test": [["127.0.0.1"]]})
    client = Client(f"https://other.example.test:{port}/", allow_private=True, ca_certs=cert, retries=0)
    with pytest.raises(Unreachable, match="SSLCertVerificationError|doesn't match"):
        client.post(b"{}", {})


def test_ipv6_forms_decode_to_the_ipv4_they_reach():
    assert embedded_ipv4(ipaddress.ip_address("2002:a9fe:a9fe::")) == ipaddress.ip_address("169.254.169.254")
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::a00:1")) == ipaddress.ip_address("10.0.0.1")
    assert embedded_ipv4(ipaddress.ip_address("::ffff:127.0.0.1")) == ipaddress.ip_address("127.0.0.1")
    assert embedded_ipv4(ipaddress.ip_address("2606:2800:220:1::1")) is None
