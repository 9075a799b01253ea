"""The coordination channel (rank 0's rendezvous: a key-value store with barriers) against a real HTTP
server on loopback."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from ksi_multi.channel import AbortWatch, LocalChannel, RendezvousClient, seal, unseal
from ksi_multi.errors import Aborted, KsiError
from ksi_multi.rendezvous import AUTH_HEADER, Rendezvous, RendezvousError, RendezvousServer, sign, verify

SECRET = "s3cret" * 8
HOSTS = ["node01", "node02", "node03"]


@pytest.fixture
def server():
    state = Rendezvous(HOSTS)
    srv = RendezvousServer("127.0.0.1", 0, SECRET, state).start()
    yield srv
    srv.stop()


def client(srv, rank=1, secret=SECRET):
    return RendezvousClient("127.0.0.1", srv.port, secret, rank, HOSTS[rank], request_timeout=5)


def soon(seconds=5):
    return time.monotonic() + seconds


def test_every_node_puts_its_address_and_the_barrier_gives_all_of_them(server):
    rank0 = LocalChannel(server.state)
    rank0.put("member", {"address": "127.0.0.1"}, soon())
    results = {}

    def worker(rank):
        c = client(server, rank)
        c.put("member", {"address": f"127.0.0.{rank + 1}"}, soon())
        results[rank] = c.wait_all("member", soon())

    threads = [threading.Thread(target=worker, args=(r,)) for r in (1, 2)]
    for t in threads:
        t.start()
    assert rank0.wait_all("member", soon()) == {r: {"address": f"127.0.0.{r + 1}"} for r in range(3)}
    for t in threads:
        t.join()
    assert results[1] == results[2] == rank0.get("member")[0]
    assert [m["address"] for m in server.state.members()] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_a_barrier_that_never_completes_names_who_is_missing():
    state = Rendezvous(HOSTS)
    state.publish("mesh", {"mesh_port": 1})
    state.publish("mesh", {"mesh_port": 2}, rank=2)
    started = time.monotonic()
    with pytest.raises(RendezvousError, match=r"rank 1 \(node02\) published no mesh"):
        LocalChannel(state).wait_all("mesh", soon(0.5))
    assert time.monotonic() - started < 2


def test_a_put_again_replaces_and_a_foreign_rank_is_refused(server):
    c = client(server)
    c.put("member", {"address": "127.0.0.2"}, soon())
    c.put("member", {"address": "127.0.0.9"}, soon())
    assert server.state.of("member") == {1: {"address": "127.0.0.9"}}
    status, body = c.request("POST", "/v1/put", {"rank": 1, "hostname": "node03", "key": "member",
                                                 "value": {"address": "127.0.0.3"}})
    assert status == 409 and "rank 1 belongs to node02" in body["error"]


def test_the_join_material_is_rank_0s_alone_and_sealed(server):
    join = {"endpoint": "10.250.0.1:6443", "token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:00"}
    LocalChannel(server.state).put("join", {"sealed": seal(SECRET, join)}, soon())
    status, raw = client(server).request("GET", "/v1/get?key=join")
    assert status == 200 and join["token"] not in json.dumps(raw)  # what crosses the network is sealed
    assert unseal(SECRET, client(server).wait_for("join", 0, soon())["sealed"]) == join
    with pytest.raises(KsiError, match="does not open with this job's secret"):
        unseal("another" * 8, raw["values"]["0"]["sealed"])
    status, body = client(server).request("POST", "/v1/put", {"rank": 1, "hostname": "node02", "key": "join",
                                                               "value": {"sealed": "x"}})
    assert status == 400 and server.state.of("join").keys() == {0}


def test_an_abort_reaches_every_node_with_its_reason(server):
    seen = []
    server.state.on_abort = seen.append
    watched = []
    watch = AbortWatch(client(server, 2), watched.append, interval=0.1).start()
    try:
        client(server, 1).abort("cluster: kubeadm join failed")
        assert seen == ["node02 failed in cluster: kubeadm join failed"]
        deadline = soon()
        while not watched and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watched == seen
    finally:
        watch.stop()
    with pytest.raises(Aborted, match="the job was aborted: node02 failed in cluster"):
        client(server, 2).wait_all("mesh", soon())
    with pytest.raises(Aborted):
        LocalChannel(server.state).wait_all("mesh", soon())
    client(server, 2).abort("later")  # the first reason stays
    assert server.state.closed == "node02 failed in cluster: kubeadm join failed" and len(seen) == 1


def test_rank_0_gone_quiet_counts_as_an_abort():
    reasons = []
    watch = AbortWatch(RendezvousClient("127.0.0.1", 9, SECRET, 1, "node02", request_timeout=0.5), reasons.append,
                       interval=0.05, patience=3).start()
    deadline = soon()
    while not reasons and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.stop()
    assert reasons and "stopped answering" in reasons[0]


def test_many_workers_ask_rank_0_less_often_and_wait_longer_for_it():
    quiet = RendezvousClient("127.0.0.1", 9, SECRET, 1, "node02")
    few, many = AbortWatch.for_nodes(4, quiet, print), AbortWatch.for_nodes(64, quiet, print)
    assert (few.interval, few.patience) == (2.0, 5)
    assert 64 / many.interval <= 8  # questions per second at rank 0
    assert many.interval * many.patience > 4 * few.interval * few.patience


def test_wrong_secret_is_rejected(server):
    with pytest.raises(RendezvousError, match="answered with a wrong job signature"):
        client(server, secret="wrong").put("member", {"address": "127.0.0.2"}, soon(1))
    assert server.state.of("member") == {}


def test_missing_signature_gets_401(server):
    body = {"rank": 1, "hostname": "node02", "key": "member", "value": {"address": "127.0.0.2"}}
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/put", method="POST",
                                 data=json.dumps(body).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401
    assert server.state.of("member") == {}


def _post(server, path, body: bytes, header: str):
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method="POST", data=body,
                                 headers={AUTH_HEADER: header, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get(AUTH_HEADER)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get(AUTH_HEADER)


PUT = json.dumps({"rank": 1, "hostname": "node02", "key": "member", "value": {"address": "127.0.0.2"}}).encode()


def test_a_recorded_request_is_accepted_once(server):
    header = sign(SECRET, "POST", "/v1/put", PUT)
    assert _post(server, "/v1/put", PUT, header)[0] == 200
    status, reply, _ = _post(server, "/v1/put", PUT, header)
    assert status == 401 and "replayed" in reply["error"]


def test_a_reply_is_bound_to_its_request():
    body = b'{"put": "member"}'
    reply = sign(SECRET, "REPLY", "/v1/put", body, nonce="a" * 32)
    assert verify(SECRET, reply, "REPLY", "/v1/put", body, nonce="a" * 32)
    assert not verify(SECRET, reply, "REPLY", "/v1/put", body, nonce="b" * 32)


def test_a_skewed_clock_is_named_as_such(server):
    status, reply, _ = _post(server, "/v1/put", PUT, sign(SECRET, "POST", "/v1/put", PUT, ts=int(time.time()) - 900))
    assert status == 401 and "off this host's clock" in reply["error"] and "NTP" in reply["error"]
    status, reply, _ = _post(server, "/v1/put", PUT, sign("wrong", "POST", "/v1/put", PUT, ts=int(time.time()) - 900))
    assert status == 401 and "clock" not in reply["error"], "without the secret, nothing about the clock"


def test_bad_bodies(server):
    c = client(server)
    for bad in ({"rank": 5, "hostname": "x", "key": "member", "value": {"address": "1.2.3.4"}},
                {"rank": 1, "hostname": "node02", "key": "member", "value": {"address": "nope"}},
                {"rank": True, "hostname": "node02", "key": "member", "value": {"address": "1.2.3.4"}},
                {"rank": 1, "hostname": "node02", "key": "secret", "value": {}},
                {"rank": 1, "hostname": "node02", "key": "member", "value": {"address": "1.2.3.4"}, "x": 1},
                ["not", "an", "object"]):
        status, body = c.request("POST", "/v1/put", bad)
        assert status == 400, bad
        assert body["error"]
    assert c.request("GET", "/v1/get?key=../../etc")[0] == 404
    assert c.request("GET", "/v1/members")[0] == 404


def test_unreachable_rendezvous_gives_up_at_deadline():
    c = RendezvousClient("127.0.0.1", 9, SECRET, 1, "node02", request_timeout=1)
    started = time.monotonic()
    with pytest.raises(RendezvousError, match="no answer from the rendezvous at 127.0.0.1:9"):
        c.put("member", {"address": "127.0.0.2"}, soon(1))
    assert time.monotonic() - started < 5


def test_signature_binds_time_method_path_and_body():
    header = sign(SECRET, "POST", "/v1/put", b"{}", ts=1000)
    assert verify(SECRET, header, "POST", "/v1/put", b"{}", now=1000)
    assert not verify(SECRET, header, "POST", "/v1/put", b"{ }", now=1000)
    assert not verify(SECRET, header, "GET", "/v1/put", b"{}", now=1000)
    assert not verify(SECRET, header, "POST", "/v1/put", b"{}", now=2000)  # replay outside the window
    assert not verify("other", header, "POST", "/v1/put", b"{}", now=1000)
    assert not verify(SECRET, None, "POST", "/", b"", now=1000)
    assert AUTH_HEADER.lower().startswith("x-")


def test_a_node_reports_its_loss_and_its_fields_for_its_own_rank_only(server):
    c = client(server, 2)
    c.put("lost", {"reason": "node container exited"}, soon())
    assert server.state.lost_hosts() == {"node03": "node container exited"}
    c.put("node", {"proxy": "restarted 1x", "nodeports": {"30080": "ok"}}, soon())
    assert server.state.node_reports() == {"node03": {"proxy": "restarted 1x", "nodeports": {"30080": "ok"}}}
    for fields in ({"lost": "x"}, {"proxy": 5}, {"proxy": "x" * 501}, {}, {"nodeports": {"x": "ok"}},
                   {"nodeports": {"30080": 1}}, {"nodeports": ["30080"]}, {"mesh_helper": "a\nb"}):
        status, body = c.request("POST", "/v1/put", {"rank": 2, "hostname": "node03", "key": "node", "value": fields})
        assert status == 400 and "fields must be proxy" in body["error"], fields
    for value in ({"reason": 5}, {"reason": "x" * 501}, {"why": "x"}):
        status, _ = c.request("POST", "/v1/put", {"rank": 2, "hostname": "node03", "key": "lost", "value": value})
        assert status == 400, value
    assert server.state.node_reports()["node03"]["proxy"] == "restarted 1x"
