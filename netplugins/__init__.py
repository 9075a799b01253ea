"""Mesh plugins: how the nodes of one job reach each other.

Every plugin renders the shared topology (`netplugins.topology`, pure data) into a running mesh on one
node, behind the narrow interface below. The agent's mesh phase only ever talks to this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from netplugins.topology import Member, NodePlan

PLUGINS = ("wireguard", "wireguard-forwarded", "vxlan", "plain")
# Bytes each plugin adds to a packet: the mesh MTU is the path's minus this. plain: outer IPv6 (40) + UDP (8)
# + its header (16); its datagrams carry pieces of super-packets, so only the mesh's own packets must fit.
OVERHEAD = {"wireguard": 80, "wireguard-forwarded": 80, "vxlan": 50, "plain": 64}


@dataclass(frozen=True)
class NodeAccess:
    """What a plugin may use of its node: run a command in it, its init pid (namespaces), private files."""

    exec: Callable[..., Any]  # exec(*argv, input=None, timeout=...) -> CompletedProcess; raises on failure
    pid: int
    workdir: Path  # node-local, the job's own (0700)
    runtime: Path  # short path for unix sockets
    tools: dict[str, Path]  # helper programs the image build made, by name (ksi-wg)
    secret_file: Path | None = None  # the job's secret (0600): plugins derive their per-job material from it


class MeshPlugin(Protocol):
    name: str

    def prepare(self) -> dict[str, Any]:
        """Make this node's per-job material; return what the other nodes must know. A public key goes
        under "mesh_key" and reaches the plan as each member's public_key."""

    def plan(self, members: Sequence[Member], path_mtu: int, mtu: int | None, mesh_cidr: str,
             pod_subnet: str) -> dict[int, NodePlan]: ...

    def up(self, node: NodePlan) -> None: ...

    def wait(self, node: NodePlan, timeout: float) -> None:
        """Return once every peer is reachable; raise KsiError naming the peers that are not."""

    def check(self) -> Any:
        """Start the plugin's helper again if it died; return what happened (a Restart with describe()) or
        None."""

    def peers(self) -> dict[str, dict[str, int]]:
        """Per peer name what the plugin knows: latest_handshake, rx_bytes, tx_bytes."""

    def down(self) -> None: ...


def load(name: str, node: NodeAccess) -> MeshPlugin:
    if name in ("wireguard", "wireguard-forwarded"):
        from netplugins.wireguard.apply import WireGuardMesh

        return WireGuardMesh(node, forwarded=name == "wireguard-forwarded")
    if name == "plain":
        from netplugins.plain.apply import PlainMesh

        return PlainMesh(node)
    if name == "vxlan":
        from netplugins.vxlan.apply import VxlanMesh

        return VxlanMesh(node)
    raise ValueError(f"unknown mesh plugin {name!r}; known: {', '.join(PLUGINS)}")


def forwarded(name: str) -> bool:
    """Whether the plugin's UDP port must be forwarded into the node container (known before it starts)."""
    return name not in ("wireguard", "plain")
