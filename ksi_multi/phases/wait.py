from __future__ import annotations

import logging
import time

from ksi_multi import node
from ksi_multi.errors import KsiError

log = logging.getLogger("ksi_multi.agent")

HEARTBEAT = 5.0


class WaitPhase:
    """Stay in the foreground for the job's lifetime; notice a node container that dies."""

    name = "wait"

    def execute(self, ctx) -> None:
        log.info("wait: cluster up; holding it until the job ends (scancel, time limit, ksi-multi down)")
        while True:
            state = node.state(ctx.podman, ctx.node.name)
            if state != "running":
                raise KsiError(f"{ctx.slurm.hostname}: the node container {ctx.node.name} is {state or 'gone'}",
                               "see the agent log; the job cannot go on without this node")
            if ctx.status:
                ctx.status.update(heartbeat=time.time(), **self._mesh(ctx))
            time.sleep(HEARTBEAT)

    @staticmethod
    def _mesh(ctx) -> dict:
        """Rank 0's view of the mesh: last handshake (unix time) and bytes per peer."""
        if ctx.mesh is None:
            return {}
        names = {m["info"].get("wg_public_key"): m["hostname"] for m in ctx.members if m.get("info")}
        try:
            peers = ctx.mesh.show()["peers"]
        except Exception as exc:  # a failed query must not end the job; it shows in the log
            log.warning("wait: cannot read the mesh state: %s", exc)
            return {}
        return {"mesh": {names.get(p["public_key"], p["public_key"]): {
            "latest_handshake": p["latest_handshake"], "rx_bytes": p["rx_bytes"], "tx_bytes": p["tx_bytes"]}
            for p in peers}}
