"""VXLAN's rendering of the mesh topology: one in-kernel VXLAN device in each node, static forwarding
entries per peer (no multicast, no learning), unencrypted. Its UDP port is forwarded into the node by the
network helper, as Usernetes does with flannel."""

from __future__ import annotations

from collections.abc import Sequence

from netplugins import OVERHEAD, topology
from netplugins.topology import Member, NodePlan

DEVICE = "vxlan.ksi"
VNI = 4242
# Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
VXLAN_OVERHEAD = OVERHEAD["vxlan"]


def plan(members: Sequence[Member], path_mtu: int = 1500, mtu: int | None = None, **kwargs) -> dict[int, NodePlan]:
    return topology.plan(members, VXLAN_OVERHEAD, path_mtu, mtu, **kwargs)


def mac(rank: int) -> str:
    """A fixed, locally administered MAC per rank, so every node can write the others' entries up front."""
    return f"02:6b:73:69:{rank >> 8 & 0xFF:02x}:{rank & 0xFF:02x}"


def commands(node: NodePlan) -> list[list[str]]:
    """The `ip`/`bridge` commands that build this node's VXLAN mesh, in order."""
    out = [
        ["ip", "link", "add", DEVICE, "type", "vxlan", "id", str(VNI), "dstport", str(node.listen_port), "nolearning"],
        ["ip", "link", "set", DEVICE, "address", mac(node.rank), "mtu", str(node.mtu), "up"],
        ["ip", "address", "add", f"{node.mesh_ip}/{node.mesh_prefix}", "dev", DEVICE],
    ]
    for peer in node.peers:
        port = peer.endpoint.rsplit(":", 1)[1]
        out += [
            ["bridge", "fdb", "append", mac(peer.rank), "dev", DEVICE, "dst", peer.host, "port", port],
            ["ip", "neigh", "replace", peer.mesh_ip, "lladdr", mac(peer.rank), "dev", DEVICE, "nud", "permanent"],
        ]
        out += [["ip", "route", "replace", cidr, "via", peer.mesh_ip, "dev", DEVICE, "onlink"]
                for cidr in peer.allowed_ips[1:]]
    return out
