"""Applying a node's VXLAN plan: `ip` commands inside the node container (its own network namespace)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from netplugins import NodeAccess, probe
from netplugins.topology import Member, NodePlan
from netplugins.vxlan import plan as vxlan_plan


class VxlanMesh:
    name = "vxlan"

    def __init__(self, node: NodeAccess) -> None:
        self.node = node

    def prepare(self) -> dict:
        return {}  # nothing secret, nothing to exchange: the plan follows from the members alone

    def plan(self, members: Sequence[Member], path_mtu: int, mtu: int | None, mesh_cidr: str,
             pod_subnet: str) -> dict[int, NodePlan]:
        return vxlan_plan.plan(members, path_mtu, mtu, mesh_cidr=mesh_cidr, pod_subnet=pod_subnet)

    def up(self, node: NodePlan) -> None:
        script = "\n".join(shlex.join(c) for c in vxlan_plan.commands(node))
        self.node.exec("sh", "-ec", script, fix="the node's kernel must offer VXLAN devices (module vxlan)")

    def wait(self, node: NodePlan, timeout: float) -> None:
        probe.wait_reachable(self.node, node, timeout, "the VXLAN mesh",
                             f"check that UDP port {node.listen_port} (mesh_port) is open between the hosts (firewall)")

    def check(self) -> None:
        return None  # the VXLAN device is the node kernel's: no process of ours to die

    def peers(self) -> dict:
        return {}  # VXLAN keeps no per-peer state

    def down(self) -> None:
        self.node.exec("ip", "link", "del", vxlan_plan.DEVICE, check=False, timeout=10)
