"""Property-based: whatever a peer sends, the server's validation never fails open, and what it accepts
cannot inject anything into the mesh configuration other nodes render from it."""

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from ksi_multi import rendezvous
from ksi_multi.rendezvous import Rendezvous, printable
from netplugins.topology import Member
from netplugins.wireguard import plan as wg_plan

SIZE = 4
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)
keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
hostnames = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,20}\Z")
members = st.fixed_dictionaries({
    "rank": st.one_of(st.integers(-2, SIZE + 2), st.booleans(), st.text(max_size=3), st.none()),
    "hostname": st.one_of(hostnames, st.text(max_size=30)),
    "address": st.one_of(st.ip_addresses().map(str), st.text(max_size=20)),
    "info": st.one_of(st.fixed_dictionaries({}, optional={
        "mesh_key": st.one_of(keys, st.text(max_size=60)),
        "mesh_port": st.one_of(st.integers(-5, 70000), st.text(max_size=6), st.booleans())}), json_values),
})


@settings(max_examples=400, deadline=None)
@given(body=st.one_of(members, json_values))
def test_any_registration_is_either_refused_or_safe_to_render(body):
    problem = rendezvous._check_member(body, SIZE)
    if problem is not None:
        assert isinstance(problem, str) and "\n" not in problem
        return
    info = body.get("info", {})
    assert 0 <= body["rank"] < SIZE and not isinstance(body["rank"], bool)
    assert body["hostname"].isascii() and body["hostname"].isprintable() and len(body["hostname"]) <= 253
    assert set(info) <= {"mesh_key", "mesh_port"}
    key = info.get("mesh_key", "")
    assert key == "" or len(base64.b64decode(key)) == 32
    port = info.get("mesh_port", 51820)
    assert isinstance(port, int) and 1 <= port <= 65535


@settings(max_examples=200, deadline=None)
@given(key_list=st.lists(keys, min_size=2, max_size=5, unique=True), port=st.integers(1, 65535))
def test_accepted_keys_render_one_line_each(key_list, port):
    accepted = [{"rank": r, "hostname": f"node{r}", "address": f"10.0.0.{r + 1}",
                 "info": {"mesh_key": k, "mesh_port": port}} for r, k in enumerate(key_list)]
    assert all(rendezvous._check_member(m, len(accepted)) is None for m in accepted)
    nodes = wg_plan.plan([Member(m["rank"], m["hostname"], m["address"], m["info"]["mesh_key"], port)
                          for m in accepted])
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
    for handler in (state.register, state.report_lost, state.report_node):
        status, reply = handler(body)
        assert 200 <= status < 500 and isinstance(reply, dict)
