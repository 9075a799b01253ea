"""Property-based: whatever a peer sends, the server's validation never fails open, and what it accepts
cannot inject anything into the mesh configuration other nodes render from it."""

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from ksi_multi.rendezvous import Rendezvous, printable
from netplugins.topology import Member
from netplugins.wireguard import plan as wg_plan

SIZE = 4
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)
keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
hostnames = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,20}\Z")
puts = st.fixed_dictionaries({
    "rank": st.one_of(st.integers(-2, SIZE + 2), st.booleans(), st.text(max_size=3), st.none()),
    "hostname": st.one_of(hostnames, st.text(max_size=30)),
    "key": st.one_of(st.sampled_from(["member", "mesh", "lost", "node", "join", "federated"]), st.text(max_size=8)),
    "value": st.one_of(
        st.fixed_dictionaries({"address": st.one_of(st.ip_addresses().map(str), st.text(max_size=20))}),
        st.fixed_dictionaries({}, optional={
            "mesh_key": st.one_of(keys, st.text(max_size=60)),
            "mesh_port": st.one_of(st.integers(-5, 70000), st.text(max_size=6), st.booleans())}),
        json_values),
})


@settings(max_examples=500, deadline=None)
@given(body=st.one_of(puts, json_values))
def test_any_put_is_either_refused_or_safe_to_render(body):
    state = Rendezvous([f"node{i}" for i in range(SIZE)])
    status, reply = state.put(body)
    assert 200 <= status < 500 and isinstance(reply, dict)
    if status != 200:
        assert "\n" not in reply["error"]
        assert not any(state.values.values())
        return
    rank, key, value = body["rank"], body["key"], body["value"]
    assert 0 <= rank < SIZE and not isinstance(rank, bool) and body["hostname"] == f"node{rank}"
    assert key in ("member", "mesh", "lost", "node", "federated")
    if key == "federated":  # a barrier: nothing in it
        assert value == {}
    if key == "mesh":
        assert set(value) <= {"mesh_key", "mesh_port"}
        mesh_key = value.get("mesh_key", "")
        assert mesh_key == "" or len(base64.b64decode(mesh_key)) == 32
        assert isinstance(value["mesh_port"], int) and 1 <= value["mesh_port"] <= 65535
    if key == "member":
        assert set(value) == {"address"} and state.members()[0]["address"] == value["address"]


@settings(max_examples=200, deadline=None)
@given(key_list=st.lists(keys, min_size=2, max_size=5, unique=True), port=st.integers(1, 65535))
def test_accepted_keys_render_one_line_each(key_list, port):
    state = Rendezvous([f"node{r}" for r in range(len(key_list))])
    for r, k in enumerate(key_list):
        assert state.put({"rank": r, "hostname": f"node{r}", "key": "member", "value": {"address": f"10.0.0.{r + 1}"}})[0] == 200
        assert state.put({"rank": r, "hostname": f"node{r}", "key": "mesh",
                          "value": {"mesh_key": k, "mesh_port": port}})[0] == 200
    nodes = wg_plan.plan([Member(m["rank"], m["hostname"], m["address"], m["info"]["mesh_key"], m["info"]["mesh_port"])
                          for m in state.members()])
    text = wg_plan.peers_config(nodes[0])
    settings_seen = [line.split("=", 1)[0] for line in text.splitlines()]
    assert set(settings_seen) <= {"replace_peers", "public_key", "endpoint", "replace_allowed_ips",
                                  "persistent_keepalive_interval", "allowed_ip"}
    assert settings_seen.count("public_key") == len(key_list) - 1


@given(text=st.text())
def test_reported_text_is_one_printable_line(text):
    shown = printable(text)
    assert shown.isprintable() and len(shown) <= 500


@settings(max_examples=200, deadline=None)
@given(body=json_values)
def test_reports_from_anyone_never_raise(body):
    state = Rendezvous([f"node{i}" for i in range(SIZE)])
    for handler in (state.put, state.abort):
        status, reply = handler(body)
        assert 200 <= status < 500 and isinstance(reply, dict)
