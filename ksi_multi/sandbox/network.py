"""The sandbox network: one switch namespace holding a bridge, one veth into each host's namespace.
Nothing is added to the machine's own network namespace."""

from __future__ import annotations

from pathlib import Path

from ksi_multi.run import output, run
from ksi_multi.sandbox.plan import SandboxPlan

NETNS_DIR = Path("/run/netns")


def _ip(*args: str) -> None:
    run(["ip", *args], timeout=30)


def create(plan: SandboxPlan) -> None:
    sw = plan.switch_netns
    _ip("netns", "add", sw)
    _ip("-n", sw, "link", "set", "lo", "up")
    _ip("-n", sw, "link", "add", "br0", "type", "bridge")
    _ip("-n", sw, "link", "set", "br0", "up")
    for i, host in enumerate(plan.hosts):
        ns = plan.netns(host)
        _ip("netns", "add", ns)
        _ip("-n", sw, "link", "add", f"p{i}", "mtu", str(plan.mtu), "type", "veth",
            "peer", "name", "eth0", "mtu", str(plan.mtu), "netns", ns)
        _ip("-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{host.address}/{plan.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")


def namespaces(sandbox_name: str) -> list[str]:
    prefix = f"ksi-{sandbox_name}-"
    listing = output(["ip", "netns", "list"], timeout=30)
    return [line.split()[0] for line in listing.splitlines() if line.startswith(prefix)]


def delete(sandbox_name: str) -> None:
    for ns in namespaces(sandbox_name):
        run(["ip", "netns", "delete", ns], timeout=30)
