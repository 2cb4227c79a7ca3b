"""Slow clients (issue 16): connections that keep sending a byte now and then never lock the
API out.

waitress closes a connection only after `--channel-timeout` of *silence* and stops accepting
at its connection limit, so 220 connections each sending a header line every 15 s kept the
API unanswerable. The server now bounds how long a request may take to arrive
(`--header-timeout`, `--request-timeout`: 408 in the API's envelope, then closed) and makes
room for a new connection by evicting the one stuck longest mid-request when it is full or a
client address is at its cap. These tests run the real `make run` process with the shipped
limits (200 connections, 100 per address) and short deadlines, attack it with 300 trickling
connections (from the health checker's own address and another loopback address, so both the
per-address cap and the global limit are reached), and require every `GET /api/version`
sampled meanwhile to answer 200 with a p99 under a second.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest

from tests.servers import ApiServer

pytestmark = pytest.mark.serial  # wall-clock deadlines: run alone (make test)

HEADER_TIMEOUT = 2  # seconds: short, so the tests end soon
REQUEST_TIMEOUT = 4
CHANNEL_TIMEOUT = 30  # longer than both: closing a trickler is the deadlines' work, not idleness
SLOW = 300  # connections, over the 200 in all and the 100 per address the server allows
DRIP_EVERY = 1.0  # seconds between a connection's bytes
SAMPLE_FOR = 6.0  # seconds of health checks under load
KEY = "test-api-key"


@pytest.fixture(scope="module")
def slow_api(tmp_path_factory):
    home = tmp_path_factory.mktemp("slow") / "home"
    server = ApiServer(
        home,
        api_key=KEY,
        extra_env={"AIFACTORY_MAX_CONCURRENT_JOBS": "0"},
        args=[
            "--channel-timeout",
            str(CHANNEL_TIMEOUT),
            "--header-timeout",
            str(HEADER_TIMEOUT),
            "--request-timeout",
            str(REQUEST_TIMEOUT),
            "--threads",
            "4",
        ],
    )
    with server:
        yield server


def _sources() -> list[str]:
    """The checker's address, and a second loopback address where the system has one."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
        return ["127.0.0.1", "127.0.0.2"]
    except OSError:
        return ["127.0.0.1"]


class Trickler(threading.Thread):
    """`count` connections each sending `opening`, then `drip` every DRIP_EVERY seconds; one the
    server closes is opened again at once, so the attack stays at `count` connections."""

    def __init__(self, port: int, count: int, opening: bytes, drip: bytes):
        super().__init__(daemon=True)
        self.port, self.count, self.opening, self.drip = port, count, opening, drip
        self.sources = _sources()
        self.socks: list[socket.socket | None] = [None] * count
        self.opened = self.closed_by_server = 0
        self.ready = threading.Event()
        self.stop = threading.Event()

    def _open(self, i: int) -> None:
        sock = socket.create_connection(
            ("127.0.0.1", self.port), timeout=5, source_address=(self.sources[i % len(self.sources)], 0)
        )
        sock.setblocking(False)
        try:
            sock.send(self.opening)
        except OSError:
            pass
        self.socks[i] = sock
        self.opened += 1

    def _alive(self, sock: socket.socket) -> bool:
        try:
            while True:  # whatever the server answered (408, 503) is drained
                if not sock.recv(65536):
                    return False
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            sock.send(self.drip)
            return True
        except BlockingIOError:
            return True
        except OSError:
            return False

    def run(self) -> None:
        for i in range(self.count):
            self._open(i)
        self.ready.set()
        while not self.stop.is_set():
            started = time.monotonic()
            for i, sock in enumerate(self.socks):
                if self.stop.is_set():
                    break
                if sock is None or not self._alive(sock):
                    if sock is not None:
                        sock.close()
                        self.closed_by_server += 1
                    try:
                        self._open(i)
                    except OSError:
                        self.socks[i] = None
            self.stop.wait(max(0.0, DRIP_EVERY - (time.monotonic() - started)))

    def close(self) -> None:
        self.stop.set()
        self.join(10)
        for sock in self.socks:
            if sock is not None:
                sock.close()


def _sample(api: ApiServer, seconds: float) -> list[tuple[int, float]]:
    results = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        began = time.perf_counter()
        status, body = api.call("GET", "/api/version")
        results.append((status if body == "v1.5.0" else -status, time.perf_counter() - began))
        time.sleep(0.02)
    return results


HEADER_OPENING = b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n"
BODY_OPENING = (
    b"POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: " + KEY.encode() + b"\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
)


@pytest.mark.parametrize(
    ("opening", "drip"),
    [(HEADER_OPENING, b"x-slow: 1\r\n"), (BODY_OPENING, b" ")],
    ids=["header-lines", "body-bytes"],
)
def test_health_answers_under_300_trickling_connections(slow_api, opening, drip):
    attack = Trickler(slow_api.port, SLOW, opening, drip)
    attack.start()
    try:
        assert attack.ready.wait(60), "could not open the slow connections"
        samples = _sample(slow_api, SAMPLE_FOR)
    finally:
        attack.close()
    latencies = sorted(seconds for _, seconds in samples)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"\n{SLOW} slow connections ({opening.split(b' ')[0].decode()}, {len(attack.sources)} addresses): "
        f"{len(samples)} health checks, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
        f"{attack.opened} connections opened, {attack.closed_by_server} closed by the server"
    )
    assert len(samples) >= 50
    assert {status for status, _ in samples} == {200}
    assert p99 < 1.0
    assert attack.closed_by_server >= SLOW - 200  # the deadlines and the caps did close them
    assert slow_api.call("GET", "/api/version") == (200, "v1.5.0")


def _trickle_until_answered(port: int, opening: bytes, drip: bytes, give_up: float) -> tuple[float, bytes]:
    """Sends `opening`, then `drip` every half second until the server answers or closes:
    (seconds it took, what it said)."""
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as sock:
        began = time.monotonic()
        sock.sendall(opening)
        while time.monotonic() - began < give_up:
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                break
            sock.sendall(drip)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return time.monotonic() - began, answer


def _status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_trickled_headers_are_cut_at_the_header_deadline(slow_api):
    took, answer = _trickle_until_answered(
        slow_api.port, b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"x-slow: 1\r\n", give_up=20
    )
    assert HEADER_TIMEOUT <= took < HEADER_TIMEOUT + 3  # not channel_timeout: it never fell silent
    assert _status_and_body(answer) == (
        408,
        {"result": "Error", "message": f"Request Timeout: headers not received within {HEADER_TIMEOUT} s"},
    )


def test_trickled_body_is_cut_at_the_request_deadline(slow_api):
    took, answer = _trickle_until_answered(slow_api.port, BODY_OPENING, b" ", give_up=20)
    assert REQUEST_TIMEOUT <= took < REQUEST_TIMEOUT + 3
    assert _status_and_body(answer) == (
        408,
        {"status": "error", "message": f"Request Timeout: request not received within {REQUEST_TIMEOUT} s"},
    )
