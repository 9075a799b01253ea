"""The mesh plan: mesh address, pod range, peers and MTU of every node, from the rendezvous members."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

MESH_CIDR = "10.250.0.0/16"
POD_SUBNET = "10.244.0.0/16"
# Outer IPv6 (40) + UDP (8) + WireGuard header and tag (32): what wg-quick subtracts.
WIREGUARD_OVERHEAD = 80
MIN_MTU = 1280


@dataclass(frozen=True)
class Member:
    rank: int
    hostname: str
    host_address: str
    public_key: str
    port: int


@dataclass(frozen=True)
class Peer:
    name: str
    public_key: str
    endpoint: str
    allowed_ips: tuple[str, ...]


@dataclass(frozen=True)
class NodePlan:
    name: str
    rank: int
    mesh_ip: str
    mesh_prefix: int
    pod_cidr: str
    listen_port: int
    mtu: int
    peers: tuple[Peer, ...]

    @property
    def routes(self) -> tuple[str, ...]:
        """Every other node's pod range goes over the mesh interface."""
        return tuple(a for p in self.peers for a in p.allowed_ips if not a.endswith("/32"))


def mesh_mtu(path_mtu: int, override: int | None = None) -> int:
    mtu = override if override else path_mtu - WIREGUARD_OVERHEAD
    if mtu < MIN_MTU:
        raise ValueError(f"mesh MTU {mtu} is below {MIN_MTU} (path MTU {path_mtu})")
    return mtu


def _nth_subnet(network: str, prefix: int, n: int) -> str:
    net = ipaddress.ip_network(network)
    step = 1 << (prefix - net.prefixlen) if prefix >= net.prefixlen else 0
    if not 0 <= n < step:
        raise ValueError(f"node {n} does not fit: {network} holds {step} /{prefix} ranges")
    return str(ipaddress.ip_network((int(net.network_address) + n * (1 << (32 - prefix)), prefix)))


def plan(members: Sequence[Member], path_mtu: int = 1500, mtu: int | None = None, mesh_cidr: str = MESH_CIDR,
         pod_subnet: str = POD_SUBNET) -> dict[int, NodePlan]:
    """The whole mesh, one NodePlan per rank. Every node peers with every other (full mesh)."""
    ranks = [m.rank for m in members]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"duplicate ranks in {ranks}")
    keys = [m.public_key for m in members]
    if len(set(keys)) != len(keys):
        raise ValueError("two members share a public key")
    mesh = ipaddress.ip_network(mesh_cidr)
    size = mesh_mtu(path_mtu, mtu)
    addr = {m.rank: str(mesh.network_address + 1 + m.rank) for m in members}
    pods = {m.rank: _nth_subnet(pod_subnet, 24, m.rank) for m in members}
    if max(ranks) + 2 >= mesh.num_addresses:
        raise ValueError(f"{len(members)} nodes do not fit into {mesh_cidr}")
    out = {}
    for m in members:
        peers = tuple(Peer(name=o.hostname, public_key=o.public_key, endpoint=f"{o.host_address}:{o.port}",
                           allowed_ips=(f"{addr[o.rank]}/32", pods[o.rank]))
                      for o in sorted(members, key=lambda x: x.rank) if o.rank != m.rank)
        out[m.rank] = NodePlan(name=m.hostname, rank=m.rank, mesh_ip=addr[m.rank], mesh_prefix=mesh.prefixlen,
                               pod_cidr=pods[m.rank], listen_port=m.port, mtu=size, peers=peers)
    return out


def peers_config(node: NodePlan, keepalive: int = 25) -> str:
    """WireGuard's UAPI "set" text for this node's peers (ksi-wg takes the private key and port separately)."""
    lines = ["replace_peers=true"]
    for p in node.peers:
        lines += [f"public_key={p.public_key}", f"endpoint={p.endpoint}", "replace_allowed_ips=true",
                  f"persistent_keepalive_interval={keepalive}"]
        lines += [f"allowed_ip={a}" for a in p.allowed_ips]
    return "\n".join(lines) + "\n"
