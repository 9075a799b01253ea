from __future__ import annotations

import logging

from ksi_multi.errors import KsiError
from ksi_multi.node import NODE_ADDRESS

log = logging.getLogger("ksi_multi.agent")


class MeshPhase:
    """Connect the nodes. One node needs no mesh: its Kubernetes address is its own in-namespace address."""

    name = "mesh"

    def execute(self, ctx) -> None:
        if ctx.slurm.node_count > 1:
            raise KsiError("a cluster across several nodes needs the node mesh, which this version does not have yet",
                           "run on one node (-N 1), or stop earlier with --until node")
        ctx.node_ip = NODE_ADDRESS
        log.info("mesh: single node, node address %s", ctx.node_ip)
