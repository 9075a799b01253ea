"""WireGuard's rendering of the mesh topology: MTU after WireGuard's overhead, and the peers' UAPI text."""

from __future__ import annotations

from collections.abc import Sequence

from netplugins import OVERHEAD, topology
from netplugins.topology import Member, NodePlan, Peer

__all__ = ["Member", "NodePlan", "Peer", "mesh_mtu", "peers_config", "plan"]

# Outer IPv6 (40) + UDP (8) + WireGuard header and tag (32): what wg-quick subtracts.
WIREGUARD_OVERHEAD = OVERHEAD["wireguard"]


def mesh_mtu(path_mtu: int, override: int | None = None) -> int:
    return topology.mesh_mtu(path_mtu, WIREGUARD_OVERHEAD, override)


def plan(members: Sequence[Member], path_mtu: int = 1500, mtu: int | None = None, **kwargs) -> dict[int, NodePlan]:
    nodes = topology.plan(members, WIREGUARD_OVERHEAD, path_mtu, mtu, **kwargs)
    keys = [m.public_key for m in members]
    if len(set(keys)) != len(keys):
        raise ValueError("two members share a public key")
    return nodes


def peers_config(node: NodePlan, keepalive: int = 25) -> str:
    """WireGuard's UAPI "set" text for this node's peers (ksi-wg takes the private key and port separately)."""
    lines = ["replace_peers=true"]
    for p in node.peers:
        lines += [f"public_key={p.public_key}", f"endpoint={p.endpoint}", "replace_allowed_ips=true",
                  f"persistent_keepalive_interval={keepalive}"]
        lines += [f"allowed_ip={a}" for a in p.allowed_ips]
    return "\n".join(lines) + "\n"
