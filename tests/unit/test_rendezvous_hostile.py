"""A live rendezvous under hostile input from the network: every bad request gets a 4xx, memory and threads
stay bounded, and the job's ranks still register."""

import socket
import threading
import time

import psutil
import pytest

from ksi_multi import rendezvous
from ksi_multi.channel import RendezvousClient
from ksi_multi.rendezvous import Rendezvous, RendezvousServer

SECRET = "s3cret" * 8
HOSTS = ["node01", "node02"]
ATTACKER = "127.0.0.2"  # another host of the network (the ranks come from 127.0.0.1)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(rendezvous, "CONNECTION_DEADLINE", 1.5)
    monkeypatch.setattr(rendezvous._Handler, "timeout", 1.5)
    srv = RendezvousServer("127.0.0.1", 0, SECRET, Rendezvous(HOSTS)).start()
    yield srv
    srv.stop()


def connect(srv, source=ATTACKER) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", srv.port))
    return sock


def status_of(srv, request: bytes) -> int:
    with connect(srv) as sock:
        sock.sendall(request)
        reply = sock.recv(4096).decode(errors="replace")
    return int(reply.split()[1])


def post(length: str, body: bytes = b"") -> bytes:
    return f"POST /v1/put HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode() + body


def register_all(srv) -> None:
    deadline = time.monotonic() + 10
    for rank, host in enumerate(HOSTS):
        RendezvousClient("127.0.0.1", srv.port, SECRET, rank, host, request_timeout=5).put(
            "member", {"address": f"127.0.0.{rank + 1}"}, deadline)
    members = RendezvousClient("127.0.0.1", srv.port, SECRET, 1, HOSTS[1], request_timeout=5).wait_all(
        "member", deadline)
    assert sorted(members) == [0, 1]
    assert [m["hostname"] for m in srv.state.members()] == HOSTS


@pytest.mark.parametrize("length, expected", [("-1", 400), ("abc", 400), ("1e3", 400), ("١٢", 400),
                                              (str(1 << 40), 413), (str(rendezvous.MAX_BODY + 1), 413)])
def test_a_bad_content_length_is_refused_before_anything_is_read(server, length, expected, caplog):
    before = psutil.Process().memory_info().rss
    assert status_of(server, post(length)) == expected
    assert psutil.Process().memory_info().rss - before < 50 << 20
    assert "refused a request from 127.0.0.2" in caplog.text


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"null"])
def test_unsigned_or_malformed_bodies_get_a_4xx(server, body):
    assert 400 <= status_of(server, post(str(len(body)), body)) < 500


def test_a_slow_sender_is_cut_off_at_the_deadline(server):
    with connect(server) as sock:
        started = time.monotonic()
        try:
            for byte in post("10"):
                sock.sendall(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            pass  # the server closed the connection
        else:
            pytest.fail("the server kept reading a request sent at ~3 bytes/s")
        assert time.monotonic() - started < 10


def test_idle_connections_are_bounded_and_the_ranks_still_register(server):
    threads = threading.active_count()
    idle = []
    for _ in range(500):
        try:
            idle.append(connect(server))
        except OSError:
            break
    time.sleep(0.5)
    try:
        assert threading.active_count() <= threads + rendezvous.MAX_CONNECTIONS_PER_PEER + 2
        register_all(server)
    finally:
        for sock in idle:
            sock.close()


def test_a_header_flood_does_not_grow_memory(server):
    before = psutil.Process().memory_info().rss
    line = b"X-Pad: " + b"a" * 60_000 + b"\r\n"
    socks = []
    for _ in range(rendezvous.MAX_CONNECTIONS_PER_PEER):
        sock = connect(server)
        sock.sendall(b"POST /v1/put HTTP/1.1\r\n")
        socks.append(sock)
    for sock in socks:
        try:
            for _ in range(100):
                sock.sendall(line)
        except OSError:
            pass  # cut off at the request size limit
    try:
        assert psutil.Process().memory_info().rss - before < 60 << 20
    finally:
        for sock in socks:
            sock.close()
    register_all(server)
