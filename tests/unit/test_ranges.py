"""The job's address ranges: validation, overlaps, the host's networks, and the plans they feed."""

import ipaddress

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ksi_multi import config, doctor, kubeadm, proxy
from ksi_multi.errors import ConfigError
from ksi_multi.node import NodeSpec
from ksi_multi.ranges import Ranges, check
from netplugins.topology import Member
from netplugins.vxlan import plan as vxlan_plan
from netplugins.wireguard import plan as wg_plan

SITE = Ranges(pods="172.20.0.0/16", services="172.21.0.0/20", mesh="172.22.0.0/24", node="192.168.77.0/24")


@pytest.mark.parametrize(("key", "value", "why"), [
    ("pod_subnet", "10.244.0.1/16", "no host bits set"),
    ("pod_subnet", "10.244.0.0/25", "/8 to /24"),
    ("service_subnet", "10.0.0.0/8", "/12 to /24"),
    ("node_subnet", "10.0.2.0/23", "must be a /24 network"),
    ("mesh_subnet", "fd00::/64", "IPv4 network"),
    ("mesh_subnet", "127.1.0.0/16", "unicast"),
    ("pod_subnet", "10.0.2.0/24; rm -rf /", "IPv4 network"),
])
def test_a_bad_range_is_named_with_what_is_wanted(key, value, why):
    assert why in check(key, value)
    with pytest.raises(ConfigError, match=f"config: {key}: .*{why}"):
        config.load("/dev/null", {}, {key: value})


def test_ranges_that_overlap_each_other_are_refused_by_name():
    with pytest.raises(ConfigError, match="pod_subnet 10.244.0.0/16 overlaps mesh_subnet 10.244.7.0/24"):
        config.load("/dev/null", {}, {"mesh_subnet": "10.244.7.0/24"})
    cfg = config.load("/dev/null", {}, {"pod_subnet": SITE.pods, "service_subnet": SITE.services,
                                         "mesh_subnet": SITE.mesh, "node_subnet": SITE.node})
    assert Ranges.of(cfg) == SITE


def test_ranges_are_checked_against_the_hosts_addresses_and_routes_but_not_its_default_route():
    host = [("eth0's address 10.244.3.7", "10.244.3.7/255.255.255.0"), ("a route via eth0", "0.0.0.0/0.0.0.0"),
            ("a route via ib0", "10.0.0.0/255.0.0.0")]
    result = doctor.check_ranges(Ranges(), host)
    assert not result.ok
    assert result.detail == ("pod_subnet 10.244.0.0/16 overlaps eth0's address 10.244.3.7 (10.244.3.0/24); "
                             "pod_subnet 10.244.0.0/16 overlaps a route via ib0 (10.0.0.0/8); "
                             "service_subnet 10.96.0.0/16 overlaps a route via ib0 (10.0.0.0/8); "
                             "mesh_subnet 10.250.0.0/16 overlaps a route via ib0 (10.0.0.0/8); "
                             "node_subnet 10.0.2.0/24 overlaps a route via ib0 (10.0.0.0/8)")
    assert "pod_subnet" in result.fix
    assert doctor.check_ranges(SITE, host).ok
    assert all(ipaddress.IPv4Network(cidr, strict=False) for _, cidr in doctor.host_networks())


def test_node_count_limits_follow_the_ranges():
    assert Ranges().max_nodes == 256
    assert Ranges(pods="10.244.0.0/22").too_small_for(5) == (
        "5 nodes do not fit the address ranges: pod_subnet 10.244.0.0/22 holds 4 nodes (a /24 each), "
        "mesh_subnet 10.250.0.0/16 65534")
    assert SITE.too_small_for(254) is None and SITE.too_small_for(255)


def test_a_sites_ranges_reach_kubeadm_the_node_the_proxy_and_the_mesh():
    plan = kubeadm.ClusterPlan(job_id="7", kubernetes_version="v1.32.5", node_name="node01", node_ip="172.22.0.1",
                               host_address="10.77.0.11", api_server_port=40000, token="abcdef.0123456789abcdef",
                               ranges=SITE)
    init = [d for d in yaml.safe_load_all(kubeadm.init_config(plan)) if d["kind"] == "ClusterConfiguration"][0]
    assert init["networking"] == {"podSubnet": SITE.pods, "serviceSubnet": SITE.services}
    assert kubeadm.pod_cidr(3, SITE.pods) == "172.20.3.0/24"
    assert kubeadm.masquerade_rule("172.20.3.0/24", SITE.pods)[5:8] == ["!", "-d", SITE.pods]
    spec = NodeSpec("7", "node01", "img:1", "10.77.0.11", subnet=SITE.node)
    assert spec.network() == "pasta:-a,192.168.77.100,-n,24,-g,192.168.77.2"
    slirp = NodeSpec("7", "node01", "img:1", "10.77.0.11", net_backend="slirp4netns", subnet=SITE.node)
    assert "cidr=192.168.77.0/24" in slirp.network()
    assert proxy.inside_ranges(SITE.pods, SITE.services, SITE.mesh, SITE.node)[:4] == (
        SITE.pods, SITE.services, SITE.mesh, SITE.node)
    members = [Member(r, f"node{r + 1:02d}", f"10.77.0.{11 + r}", f"{r:064x}", 51820) for r in range(3)]
    mesh = wg_plan.plan(members, 1500, None, mesh_cidr=SITE.mesh, pod_subnet=SITE.pods)
    assert [mesh[r].mesh_ip for r in range(3)] == ["172.22.0.1", "172.22.0.2", "172.22.0.3"]
    assert mesh[0].routes == ("172.20.1.0/24", "172.20.2.0/24")


@st.composite
def layouts(draw):
    """A number of nodes and a set of ranges that holds them (distinct /8s: never overlapping)."""
    firsts = draw(st.lists(st.integers(1, 126), min_size=2, max_size=2, unique=True))
    pod_prefix = draw(st.integers(8, 24))
    mesh_prefix = draw(st.integers(8, 24))
    pods = ipaddress.IPv4Network((firsts[0] << 24, pod_prefix), strict=False)
    mesh = ipaddress.IPv4Network((firsts[1] << 24, mesh_prefix), strict=False)
    ranges = Ranges(pods=str(pods), mesh=str(mesh), services="100.64.0.0/16", node="198.18.0.0/24")
    nodes = draw(st.integers(1, min(ranges.max_nodes, 40)))
    ports = draw(st.lists(st.integers(1024, 65535), min_size=nodes, max_size=nodes))
    ranks = draw(st.permutations(list(range(nodes))))
    return ranges, [Member(r, f"n{r}", f"192.0.2.{r + 1}", f"{r:064x}", ports[r]) for r in ranks]


@settings(max_examples=150, deadline=None)
@given(layouts(), st.sampled_from([wg_plan.plan, vxlan_plan.plan]))
def test_every_plan_fits_its_ranges_and_all_nodes_agree(layout, plan_of):
    ranges, members = layout
    mesh = plan_of(members, 1500, None, mesh_cidr=ranges.mesh, pod_subnet=ranges.pods)
    assert sorted(mesh) == sorted(m.rank for m in members)
    pod_net, mesh_net = ipaddress.IPv4Network(ranges.pods), ipaddress.IPv4Network(ranges.mesh)
    pods = [ipaddress.IPv4Network(n.pod_cidr) for n in mesh.values()]
    assert all(p.subnet_of(pod_net) for p in pods)
    assert all(not a.overlaps(b) for i, a in enumerate(pods) for b in pods[i + 1:])
    ips = [n.mesh_ip for n in mesh.values()]
    assert len(set(ips)) == len(ips) and all(ipaddress.IPv4Address(ip) in mesh_net for ip in ips)
    by_name = {n.name: n for n in mesh.values()}
    port = {m.hostname: m.port for m in members}
    for node in mesh.values():
        assert {p.name for p in node.peers} == set(by_name) - {node.name}
        for peer in node.peers:
            other = by_name[peer.name]
            assert peer.allowed_ips == (f"{other.mesh_ip}/32", other.pod_cidr)
            assert peer.endpoint == f"{other.host_address}:{port[peer.name]}"
