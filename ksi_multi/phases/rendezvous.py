from __future__ import annotations

import logging
import time

from ksi_multi.errors import KsiError
from ksi_multi.jobdir import write_json
from ksi_multi.rendezvous import Rendezvous, RendezvousClient, RendezvousError, RendezvousServer

log = logging.getLogger("ksi_multi.agent")


def coordinator_client(ctx, endpoint: dict) -> RendezvousClient:
    """A client for rank 0's rendezvous, as published in the job directory."""
    return RendezvousClient(endpoint["address"], endpoint["port"], ctx.job.read_secret())


class RendezvousPhase:
    """Every agent registers with rank 0 and learns the full membership."""

    name = "rendezvous"

    def execute(self, ctx) -> None:
        me = {"rank": ctx.slurm.rank, "hostname": ctx.slurm.hostname, "address": ctx.address, "info": ctx.info}
        if ctx.slurm.is_coordinator:
            ctx.members = self._coordinate(ctx, me)
        else:
            ctx.members = self._join(ctx, me)
        log.info("rendezvous: %d members: %s", len(ctx.members),
                 ", ".join(f"{m['hostname']}={m['address']}" for m in ctx.members))

    def _coordinate(self, ctx, me):
        state = Rendezvous(ctx.slurm.nodes)
        ctx.rendezvous = state
        server = RendezvousServer(ctx.address, ctx.config.rendezvous_port, ctx.job.read_secret(), state).start()
        ctx.on_teardown("stop the rendezvous", server.stop)
        ctx.on_teardown("close the rendezvous", lambda: state.close("the coordinator stopped"))
        state.on_change = lambda: ctx.status.set_members(list(state.members.values()))
        state.register(me)
        write_json(ctx.job.endpoint_file, {"host": ctx.slurm.hostname, "address": ctx.address, "port": server.port})
        log.info("rendezvous: listening on %s:%d for %d nodes", ctx.address, server.port, ctx.slurm.node_count)
        if not state.wait(ctx.config.rendezvous_timeout):
            missing = state.missing() or state.unacknowledged()
            verb = "never registered" if state.missing() else "never fetched the membership"
            names = ", ".join(f"rank {r} ({h})" for r, h in missing)
            state.close("timed out")
            raise KsiError(
                f"rendezvous timed out after {ctx.config.rendezvous_timeout:g} s: {len(missing)} of "
                f"{ctx.slurm.node_count} nodes {verb}: {names}",
                f"see {ctx.job.path}/agent-<host>.log of those hosts; check that they reach "
                f"{ctx.slurm.hostname} ({ctx.address}) on TCP port {server.port}")
        return [state.members[r] for r in sorted(state.members)]

    def _join(self, ctx, me):
        deadline = time.monotonic() + ctx.config.rendezvous_timeout
        endpoint = None
        while endpoint is None:
            endpoint = ctx.job.read_json(ctx.job.endpoint_file)
            if endpoint is None:
                if time.monotonic() >= deadline:
                    raise KsiError(
                        f"{ctx.slurm.hostname}: rank 0 ({ctx.slurm.coordinator_host}) did not publish its "
                        f"rendezvous in {ctx.job.endpoint_file} within {ctx.config.rendezvous_timeout:g} s",
                        f"see {ctx.job.log_file(ctx.slurm.coordinator_host)}")
                time.sleep(0.2)
        client = coordinator_client(ctx, endpoint)
        try:
            client.register(me, deadline)
            return client.wait_members(ctx.slurm.rank, deadline)
        except RendezvousError as exc:
            raise KsiError(
                f"{ctx.slurm.hostname}: cannot complete the rendezvous with rank 0 {endpoint['host']} "
                f"({endpoint['address']}, TCP port {endpoint['port']}): {exc.cause}",
                f"check that {ctx.slurm.hostname} can reach {endpoint['address']}:{endpoint['port']} "
                "(firewall, cluster network)") from None
