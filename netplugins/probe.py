"""Is every peer of a node reachable over the mesh? Asked from inside the node, with ping."""

from __future__ import annotations

import time

from ksi_multi.errors import KsiError
from netplugins import NodeAccess
from netplugins.topology import NodePlan


def wait_reachable(node: NodeAccess, plan: NodePlan, timeout: float, what: str, fix: str) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(plan.peers)
    while True:
        waiting = [p for p in waiting
                   if node.exec("ping", "-c", "1", "-W", "1", p.mesh_ip, check=False, timeout=10).returncode != 0]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{p.name} ({p.mesh_ip}, UDP {p.endpoint})" for p in waiting)
            raise KsiError(f"{plan.name}: {what} cannot reach {names} after {timeout:g} s", fix)
        time.sleep(0.5)
