"""The job's address ranges: pods, Services, the mesh, and the node's own network inside its namespace.

Pure data from the configuration. None may overlap another, nor the networks a host has (doctor checks
the host's addresses and routes): a site whose own networks use 10.244/16 would otherwise lose them
from every pod."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

POD_PREFIX = 24  # each node's pod range
NODE_HOST = 100  # the node's address in its network (slirp4netns's guest address), the gateway .2
NODE_GATEWAY_HOST = 2

# key -> (default, shortest prefix, longest prefix, what it is)
KEYS = {
    "pod_subnet": ("10.244.0.0/16", 8, 24, "pod addresses; each node gets a /24 of it"),
    "service_subnet": ("10.96.0.0/16", 12, 24, "Service (cluster IP) addresses"),
    "mesh_subnet": ("10.250.0.0/16", 8, 24, "the nodes' mesh addresses (their Kubernetes InternalIP)"),
    "node_subnet": ("10.0.2.0/24", 24, 24, "the node container's own network inside its namespace (address .100, "
                                           "gateway .2 = this host)"),
}


def check(key: str, value: str) -> str | None:
    """Why a value of one of the keys is not acceptable, or None."""
    _, shortest, longest, _ = KEYS[key]
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError:
        return "must be an IPv4 network in CIDR notation with no host bits set, e.g. " + KEYS[key][0]
    if not shortest <= net.prefixlen <= longest:
        size = f"/{shortest}" if shortest == longest else f"/{shortest} to /{longest}"
        return f"must be a {size} network"
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        return "must be a unicast network (not loopback, link-local or multicast)"
    return None


@dataclass(frozen=True)
class Ranges:
    pods: str = KEYS["pod_subnet"][0]
    services: str = KEYS["service_subnet"][0]
    mesh: str = KEYS["mesh_subnet"][0]
    node: str = KEYS["node_subnet"][0]

    @classmethod
    def of(cls, config) -> Ranges:
        return cls(pods=config.pod_subnet, services=config.service_subnet, mesh=config.mesh_subnet,
                   node=config.node_subnet)

    def named(self) -> dict[str, str]:
        return {"pod_subnet": self.pods, "service_subnet": self.services, "mesh_subnet": self.mesh,
                "node_subnet": self.node}

    @property
    def node_address(self) -> str:
        return str(ipaddress.IPv4Network(self.node)[NODE_HOST])

    @property
    def node_gateway(self) -> str:
        return str(ipaddress.IPv4Network(self.node)[NODE_GATEWAY_HOST])

    @property
    def max_nodes(self) -> int:
        pods = 1 << (POD_PREFIX - ipaddress.IPv4Network(self.pods).prefixlen)
        return min(pods, ipaddress.IPv4Network(self.mesh).num_addresses - 2)

    def too_small_for(self, nodes: int) -> str | None:
        """Why the ranges cannot hold this many nodes, or None."""
        if nodes <= self.max_nodes:
            return None
        return (f"{nodes} nodes do not fit the address ranges: pod_subnet {self.pods} holds "
                f"{1 << (POD_PREFIX - ipaddress.IPv4Network(self.pods).prefixlen)} nodes (a /{POD_PREFIX} each), "
                f"mesh_subnet {self.mesh} {ipaddress.IPv4Network(self.mesh).num_addresses - 2}")

    def overlapping(self) -> list[str]:
        """Pairs of keys whose ranges overlap, as messages."""
        items = list(self.named().items())
        return [f"{a} {na} overlaps {b} {nb}" for i, (a, na) in enumerate(items) for b, nb in items[i + 1:]
                if ipaddress.IPv4Network(na).overlaps(ipaddress.IPv4Network(nb))]

    def clashes_with(self, host_networks: Iterable[tuple[str, str]]) -> list[str]:
        """Which ranges overlap a network of the host ((what, CIDR): an interface's address, a route)."""
        out = []
        for what, cidr in host_networks:
            theirs = ipaddress.IPv4Network(cidr, strict=False)
            if theirs.prefixlen == 0:
                continue  # the default route reaches everything and takes nothing away
            out += [f"{key} {ours} overlaps {what} ({theirs})" for key, ours in self.named().items()
                    if ipaddress.IPv4Network(ours).overlaps(theirs)]
        return out
