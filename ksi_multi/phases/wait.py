from __future__ import annotations

import logging
import time

from ksi_multi.errors import KsiError

log = logging.getLogger("ksi_multi.agent")

HEARTBEAT = 5.0


class WaitPhase:
    """Stay in the foreground for the job's lifetime; notice a node container that dies."""

    name = "wait"

    def execute(self, ctx) -> None:
        log.info("wait: cluster up; holding it until the job ends (scancel, time limit, ksi-multi down)")
        while True:
            state = ctx.podman.podman("container", "inspect", "--format", "{{.State.Status}}", ctx.node.name,
                                      check=False).stdout.strip()
            if state != "running":
                raise KsiError(f"{ctx.slurm.hostname}: the node container {ctx.node.name} is {state or 'gone'}",
                               "see the agent log; the job cannot go on without this node")
            if ctx.status:
                ctx.status.update(heartbeat=time.time())
            time.sleep(HEARTBEAT)
