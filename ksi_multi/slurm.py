"""The Slurm context of one agent: job, rank, node list, this host and its address."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from ksi_multi import hostlist
from ksi_multi.errors import KsiError
from ksi_multi.run import CommandError, output


@dataclass(frozen=True)
class SlurmContext:
    job_id: str
    rank: int
    node_count: int
    nodes: tuple[str, ...]
    hostname: str

    @property
    def is_coordinator(self) -> bool:
        return self.rank == 0

    @property
    def coordinator_host(self) -> str:
        return self.nodes[0]


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand with `scontrol show hostnames` (the site's own parser), falling back to ours."""
    if shutil.which("scontrol"):
        try:
            return output(["scontrol", "show", "hostnames", nodelist], timeout=30).split()
        except CommandError:
            pass
    return hostlist.expand(nodelist)


def _need(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        if env.get(name):
            return env[name]
    raise KsiError(
        f"not inside a Slurm job step: {names[0]} is not set",
        "start the agent with srun inside an allocation, e.g. `sbatch -N 2 sbatch/ksi-multi.sbatch`")


def from_env(env: Mapping[str, str] | None = None, hostname: str | None = None) -> SlurmContext:
    env = os.environ if env is None else env
    job_id = _need(env, "SLURM_JOB_ID", "SLURM_JOBID")
    nodes = tuple(expand_nodelist(_need(env, "SLURM_JOB_NODELIST", "SLURM_NODELIST")))
    count = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or len(nodes))
    host = hostname or socket.gethostname().split(".")[0]
    rank = int(env["SLURM_NODEID"]) if env.get("SLURM_NODEID") else (nodes.index(host) if host in nodes else -1)
    if count != len(nodes):
        raise KsiError(f"Slurm says {count} nodes but the node list {nodes} has {len(nodes)}")
    if not 0 <= rank < count:
        raise KsiError(f"this host {host} is not in the job's node list {','.join(nodes)}",
                       "run one agent per allocated node: srun --ntasks-per-node=1 ksi-multi agent")
    if nodes[rank] != host:
        raise KsiError(f"SLURM_NODEID {rank} is {nodes[rank]} but this host is {host}",
                       "run one agent per allocated node: srun --ntasks-per-node=1 ksi-multi agent")
    return SlurmContext(job_id=job_id, rank=rank, node_count=count, nodes=nodes, hostname=host)


def _usable(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def host_address(hostname: str | None = None) -> str:
    """The IPv4 address other hosts of the cluster reach this host at.

    The host name's address when it resolves to a routable address (as Slurm itself needs),
    else the source address of the default route.
    """
    hostname = hostname or socket.gethostname()
    try:
        for info in socket.getaddrinfo(hostname, None, socket.AF_INET, socket.SOCK_STREAM):
            if _usable(info[4][0]):
                return info[4][0]
    except socket.gaierror:
        pass
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for route in ipr.route("get", dst="192.0.2.1"):
            src = route.get_attr("RTA_PREFSRC")
            if src and _usable(src):
                return src
    raise KsiError(f"cannot find an address of host {hostname} that other nodes can reach",
                   "make the host name resolve to the cluster-network address (/etc/hosts or DNS)")
