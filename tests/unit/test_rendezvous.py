"""The rendezvous protocol against a real HTTP server on loopback."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from ksi_multi.rendezvous import (
    AUTH_HEADER,
    Rendezvous,
    RendezvousClient,
    RendezvousError,
    RendezvousServer,
    sign,
    verify,
)

SECRET = "s3cret" * 8
HOSTS = ["node01", "node02", "node03"]


def member(rank, host=None, address=None):
    return {"rank": rank, "hostname": host or HOSTS[rank], "address": address or f"127.0.0.{rank + 1}", "info": {}}


@pytest.fixture
def server():
    state = Rendezvous(HOSTS)
    srv = RendezvousServer("127.0.0.1", 0, SECRET, state).start()
    yield srv
    srv.stop()


def client(srv, secret=SECRET):
    return RendezvousClient("127.0.0.1", srv.port, secret, request_timeout=5)


def soon(seconds=5):
    return time.monotonic() + seconds


def test_everyone_registers_and_sees_the_same_membership(server):
    server.state.register(member(0))
    results = {}

    def worker(rank):
        c = client(server)
        c.register(member(rank), soon())
        results[rank] = c.wait_members(rank, soon())

    threads = [threading.Thread(target=worker, args=(r,)) for r in (1, 2)]
    for t in threads:
        t.start()
    assert server.state.wait(timeout=5)
    for t in threads:
        t.join()
    assert results[1] == results[2]
    assert [m["hostname"] for m in results[1]] == HOSTS
    assert [m["address"] for m in results[1]] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_wrong_secret_is_rejected(server):
    status, _ = client(server).request("GET", "/v1/members")
    assert status == 200
    with pytest.raises(RendezvousError, match="answered with a wrong job signature"):
        client(server, secret="wrong").register(member(1), soon(1))
    assert server.state.members == {}


def test_missing_signature_gets_401(server):
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/register", method="POST",
                                 data=json.dumps(member(1)).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    assert server.state.members == {}


def _post(server, path, body: bytes, header: str):
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method="POST", data=body,
                                 headers={AUTH_HEADER: header, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get(AUTH_HEADER)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get(AUTH_HEADER)


def test_a_recorded_request_is_accepted_once(server):
    body = json.dumps(member(1)).encode()
    header = sign(SECRET, "POST", "/v1/register", body)
    assert _post(server, "/v1/register", body, header)[0] == 200
    status, reply, _ = _post(server, "/v1/register", body, header)
    assert status == 401 and "replayed" in reply["error"]


def test_a_reply_is_bound_to_its_request():
    body = b'{"registered": 1}'
    reply = sign(SECRET, "REPLY", "/v1/register", body, nonce="a" * 32)
    assert verify(SECRET, reply, "REPLY", "/v1/register", body, nonce="a" * 32)
    assert not verify(SECRET, reply, "REPLY", "/v1/register", body, nonce="b" * 32)


def test_a_skewed_clock_is_named_as_such(server):
    body = json.dumps(member(1)).encode()
    status, reply, _ = _post(server, "/v1/register", body, sign(SECRET, "POST", "/v1/register", body,
                                                                 ts=int(time.time()) - 900))
    assert status == 401 and "off this host's clock" in reply["error"] and "NTP" in reply["error"]
    status, reply, _ = _post(server, "/v1/register", body, sign("wrong", "POST", "/v1/register", body,
                                                                 ts=int(time.time()) - 900))
    assert status == 401 and "clock" not in reply["error"], "without the secret, nothing about the clock"


def test_duplicate_registration_is_idempotent_conflict_is_refused(server):
    c = client(server)
    c.register(member(1), soon())
    c.register(member(1, address="127.0.0.9"), soon())
    assert server.state.members[1]["address"] == "127.0.0.9"
    status, body = c.request("POST", "/v1/register", member(1, host="node03"))
    assert status == 409
    assert "rank 1 belongs to node02" in body["error"]


def test_bad_bodies(server):
    c = client(server)
    for bad in ({"rank": 5, "hostname": "x", "address": "1.2.3.4"}, {"rank": 1, "hostname": "node02", "address": "nope"},
                {"rank": True, "hostname": "node02", "address": "1.2.3.4"}, ["not", "an", "object"]):
        status, body = c.request("POST", "/v1/register", bad)
        assert status == 400, bad
        assert body["error"]


def test_late_registration_after_close(server):
    server.state.close("timed out")
    status, body = client(server).request("POST", "/v1/register", member(2))
    assert status == 410
    assert "closed: timed out" in body["error"]


def test_timeout_reports_who_is_missing():
    state = Rendezvous(HOSTS)
    state.register(member(0))
    state.register(member(2))
    started = time.monotonic()
    assert not state.wait(timeout=0.5)
    assert time.monotonic() - started < 2
    assert state.missing() == [(1, "node02")]


def test_coordinator_waits_until_members_have_fetched_the_result(server):
    server.state.register(member(0))
    for r in (1, 2):
        server.state.register(member(r))
    assert not server.state.wait(timeout=0.3)  # complete, but nobody has fetched it yet
    assert server.state.unacknowledged() == [(1, "node02"), (2, "node03")]
    for r in (1, 2):
        client(server).wait_members(r, soon())
    assert server.state.wait(timeout=1)


def test_unreachable_rendezvous_gives_up_at_deadline():
    c = RendezvousClient("127.0.0.1", 9, SECRET, request_timeout=1)
    started = time.monotonic()
    with pytest.raises(RendezvousError, match="no answer from the rendezvous at 127.0.0.1:9"):
        c.register(member(1), soon(1))
    assert time.monotonic() - started < 5


def test_signature_binds_time_method_path_and_body():
    header = sign(SECRET, "POST", "/v1/register", b"{}", ts=1000)
    assert verify(SECRET, header, "POST", "/v1/register", b"{}", now=1000)
    assert not verify(SECRET, header, "POST", "/v1/register", b"{ }", now=1000)
    assert not verify(SECRET, header, "GET", "/v1/register", b"{}", now=1000)
    assert not verify(SECRET, header, "POST", "/v1/register", b"{}", now=2000)  # replay outside the window
    assert not verify("other", header, "POST", "/v1/register", b"{}", now=1000)
    assert not verify(SECRET, None, "POST", "/", b"", now=1000)
    assert AUTH_HEADER.lower().startswith("x-")


def test_a_member_reports_its_node_lost_and_only_its_own_rank(server):
    c = client(server)
    c.report_lost(2, "node03", "node container exited")
    c.report_lost(2, "node03", "again")  # the first reason is kept
    assert server.state.lost == {2: "node container exited"}
    assert server.state.lost_hosts() == {"node03": "node container exited"}
    with pytest.raises(RendezvousError, match="belongs to node02"):
        c.report_lost(1, "node03", "wrong host")
    status, _ = c.request("POST", "/v1/lost", {"rank": 7, "hostname": "x"})
    assert status == 400 and server.state.lost == {2: "node container exited"}


def test_a_member_reports_its_node_fields_and_nothing_else(server):
    c = client(server)
    c.report_node(1, "node02", {"proxy": "restarted 1x", "nodeports": {"30080": "ok"}})
    c.report_node(1, "node02", {"nodeports": {"30080": "ok", "30081": "address already in use"}})
    assert server.state.node_reports() == {"node02": {"proxy": "restarted 1x",
                                                      "nodeports": {"30080": "ok", "30081": "address already in use"}}}
    with pytest.raises(RendezvousError, match="belongs to node03"):
        c.report_node(2, "node02", {"proxy": "x"})
    for fields in ({"lost": "x"}, {"proxy": 5}, {"proxy": "x" * 501}, {}, "proxy", {"nodeports": {"x": "ok"}},
                   {"nodeports": {"30080": 1}}, {"nodeports": ["30080"]}):
        status, body = c.request("POST", "/v1/node", {"rank": 1, "hostname": "node02", "fields": fields})
        assert status == 400 and "fields must be proxy" in body["error"]
    assert server.state.node_reports()["node02"]["proxy"] == "restarted 1x"
