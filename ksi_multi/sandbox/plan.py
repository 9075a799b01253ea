"""The sandbox as pure data: hosts, addresses, namespaces, and the files every host gets."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from ksi_multi.errors import KsiError
from ksi_multi.templates import render

USER = "ksiuser"
UID = 1500
SUBID_START = 100000
SUBID_COUNT = 65536
NODE_CPUS = 2
NODE_MEMORY_MB = 4096
MAX_NODES = 64
# The site's DNS domain: the login host runs the site's resolver (dnsmasq) for the hosts' names; names it
# does not know get no answer, so nothing asks a resolver outside this machine.
DOMAIN = "sandbox.internal"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    role: str  # "login" or "compute"
    index: int


@dataclass(frozen=True)
class SandboxPlan:
    name: str = "ksi"
    nodes: int = 4
    subnet: str = "10.77.0.0/24"
    mtu: int = 1500

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise KsiError(f"sandbox: {self.nodes} nodes is out of range", f"choose 1 to {MAX_NODES}")
        if not self.name.isalnum() or len(self.name) > 6:
            raise KsiError(f"sandbox: name {self.name!r} must be 1-6 letters or digits",
                           "it becomes part of namespace and interface names")
        net = ipaddress.ip_network(self.subnet)
        if net.num_addresses < self.nodes + 16:
            raise KsiError(f"sandbox: subnet {self.subnet} is too small for {self.nodes} nodes", "use a /24")
        if not 1280 <= self.mtu <= 65535:
            raise KsiError(f"sandbox: MTU {self.mtu} is out of range", "choose 1280 to 65535")

    @cached_property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.subnet)

    @cached_property
    def login(self) -> Host:
        return Host("login", str(self.network[2]), "login", 0)

    @cached_property
    def compute(self) -> tuple[Host, ...]:
        width = max(2, len(str(self.nodes)))
        return tuple(Host(f"node{i:0{width}d}", str(self.network[10 + i]), "compute", i)
                     for i in range(1, self.nodes + 1))

    @property
    def hosts(self) -> tuple[Host, ...]:
        return (self.login, *self.compute)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KsiError(f"sandbox: no host named {name!r}", f"hosts are: {', '.join(h.name for h in self.hosts)}")

    @property
    def switch_netns(self) -> str:
        return f"ksi-{self.name}-switch"

    def netns(self, host: Host) -> str:
        return f"ksi-{self.name}-{host.name}"

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def nodelist(self) -> str:
        """The compute nodes as one Slurm host list, e.g. node[01-04]."""
        first, last = self.compute[0].name, self.compute[-1].name
        digits = len(first) - len("node")
        return first if self.nodes == 1 else f"node[{first[-digits:]}-{last[-digits:]}]"


def hosts_file(plan: SandboxPlan) -> str:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{h.address} {h.name} {h.name}.{DOMAIN}" for h in plan.hosts]
    return "\n".join(lines) + "\n"


def resolv_conf(plan: SandboxPlan) -> str:
    return f"nameserver {plan.login.address}\nsearch {DOMAIN}\n"


def slurm_conf(plan: SandboxPlan, kill_wait: int = 30) -> str:
    return render("slurm.conf.j2", plan=plan, cpus=NODE_CPUS, memory=NODE_MEMORY_MB, kill_wait=kill_wait)


def subid_line(user: str = USER) -> str:
    return f"{user}:{SUBID_START}:{SUBID_COUNT}\n"
