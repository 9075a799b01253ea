"""The VXLAN plugin's rendering of the shared mesh topology, and plugin selection."""

import pytest

import netplugins
from netplugins.topology import Member
from netplugins.vxlan.plan import DEVICE, commands, mac, plan


def members(n, port=51820):
    return [Member(rank=r, hostname=f"node{r + 1:02d}", host_address=f"10.77.0.{11 + r}", port=port) for r in range(n)]


def test_mtu_leaves_room_for_vxlan_and_macs_are_distinct_local_unicast():
    assert {n.mtu for n in plan(members(3)).values()} == {1450}
    assert plan(members(2), path_mtu=9000)[0].mtu == 8950
    macs = {mac(r) for r in range(300)}
    assert len(macs) == 300
    assert all(int(m.split(":")[0], 16) & 0b11 == 0b10 for m in macs)  # locally administered, unicast


def test_commands_build_device_address_and_one_entry_set_per_peer():
    node = plan(members(3, port=4789))[1]
    cmds = [" ".join(c) for c in commands(node)]
    assert cmds[0] == f"ip link add {DEVICE} type vxlan id 4242 dstport 4789 nolearning"
    assert cmds[1] == f"ip link set {DEVICE} address {mac(1)} mtu 1450 up"
    assert cmds[2] == f"ip address add 10.250.0.2/16 dev {DEVICE}"
    assert f"bridge fdb append {mac(0)} dev {DEVICE} dst 10.77.0.11 port 4789" in cmds
    assert f"ip neigh replace 10.250.0.3 lladdr {mac(2)} dev {DEVICE} nud permanent" in cmds
    assert f"ip route replace 10.244.2.0/24 via 10.250.0.3 dev {DEVICE} onlink" in cmds
    assert not any("10.244.1.0/24" in c or "10.77.0.12" in c for c in cmds)  # never itself
    assert len(cmds) == 3 + 2 * 3


def test_plugins_by_name_and_which_need_their_port_forwarded():
    assert netplugins.PLUGINS == ("wireguard", "wireguard-forwarded", "vxlan", "plain")
    assert [netplugins.forwarded(p) for p in netplugins.PLUGINS] == [False, True, True, False]
    with pytest.raises(ValueError, match="unknown mesh plugin"):
        netplugins.load("flannel", None)
