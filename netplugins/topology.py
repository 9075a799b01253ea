"""The mesh topology every plugin shares: mesh address, pod range, peers and MTU of every node, computed as
pure data from the rendezvous members (Kilo-style). Plugins render it to their own configuration."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

MESH_CIDR = "10.250.0.0/16"
POD_SUBNET = "10.244.0.0/16"
MIN_MTU = 1280


@dataclass(frozen=True)
class Member:
    rank: int
    hostname: str
    host_address: str
    public_key: str = ""  # plugins without keys leave it empty
    port: int = 51820


@dataclass(frozen=True)
class Peer:
    name: str
    public_key: str
    endpoint: str  # host address:port the peer's mesh traffic is sent to
    allowed_ips: tuple[str, ...]  # its mesh address (/32) and its pod range
    rank: int = 0

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0]

    @property
    def mesh_ip(self) -> str:
        return self.allowed_ips[0].split("/")[0]


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
    host_address: str = ""  # where this node's mesh listens on its host

    @property
    def routes(self) -> tuple[str, ...]:
        """Every other node's pod range goes over the mesh interface."""
        return tuple(a for p in self.peers for a in p.allowed_ips if not a.endswith("/32"))


def mesh_mtu(path_mtu: int, overhead: int, override: int | None = None) -> int:
    """The MTU inside the mesh: the path's minus the plugin's overhead, or a smaller override. A larger one
    would make the mesh's own packets bigger than the path takes: they are dropped, and TCP stalls."""
    if override and override > path_mtu - overhead:
        raise ValueError(f"mesh MTU {override} does not fit the path MTU {path_mtu} minus the mesh's overhead "
                         f"{overhead}; at most {path_mtu - overhead}")
    mtu = override if override else path_mtu - overhead
    if mtu < MIN_MTU:
        raise ValueError(f"mesh MTU {mtu} is below {MIN_MTU} (path MTU {path_mtu})")
    return mtu


def _nth_subnet(network: str, prefix: int, n: int) -> str:
    net = ipaddress.ip_network(network)
    step = 1 << (prefix - net.prefixlen) if prefix >= net.prefixlen else 0
    if not 0 <= n < step:
        raise ValueError(f"node {n} does not fit: {network} holds {step} /{prefix} ranges")
    return str(ipaddress.ip_network((int(net.network_address) + n * (1 << (32 - prefix)), prefix)))


def plan(members: Sequence[Member], overhead: int, path_mtu: int = 1500, mtu: int | None = None,
         mesh_cidr: str = MESH_CIDR, pod_subnet: str = POD_SUBNET) -> dict[int, NodePlan]:
    """The whole mesh, one NodePlan per rank. Every node peers with every other (full mesh)."""
    ranks = [m.rank for m in members]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"duplicate ranks in {ranks}")
    mesh = ipaddress.ip_network(mesh_cidr)
    size = mesh_mtu(path_mtu, overhead, mtu)
    addr = {m.rank: str(mesh.network_address + 1 + m.rank) for m in members}
    pods = {m.rank: _nth_subnet(pod_subnet, 24, m.rank) for m in members}
    if max(ranks) + 2 >= mesh.num_addresses:
        raise ValueError(f"{len(members)} nodes do not fit into {mesh_cidr}")
    out = {}
    for m in members:
        peers = tuple(Peer(name=o.hostname, public_key=o.public_key, endpoint=f"{o.host_address}:{o.port}",
                           allowed_ips=(f"{addr[o.rank]}/32", pods[o.rank]), rank=o.rank)
                      for o in sorted(members, key=lambda x: x.rank) if o.rank != m.rank)
        out[m.rank] = NodePlan(name=m.hostname, rank=m.rank, mesh_ip=addr[m.rank], mesh_prefix=mesh.prefixlen,
                               pod_cidr=pods[m.rank], listen_port=m.port, mtu=size, peers=peers,
                               host_address=m.host_address)
    return out
