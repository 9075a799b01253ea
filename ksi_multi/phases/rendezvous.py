from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ksi_multi.channel import AbortWatch, LocalChannel, RendezvousClient
from ksi_multi.errors import KsiError
from ksi_multi.jobdir import write_json
from ksi_multi.phases.results import Joined, Member
from ksi_multi.rendezvous import Rendezvous, RendezvousError, RendezvousServer

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")


def _register(ctx, endpoint: dict, store: Rendezvous | None = None) -> Joined:
    """The first barrier: every node puts its address and waits until every node has."""
    deadline = time.monotonic() + ctx.config.rendezvous_timeout
    try:
        ctx.channel.put("member", {"address": ctx.address}, deadline)
        registered = ctx.channel.wait_all("member", deadline)
    except RendezvousError as exc:
        raise _unreachable(ctx, exc, endpoint, store) from None
    members = tuple(Member(r, ctx.slurm.nodes[r], v["address"]) for r, v in sorted(registered.items()))
    log.info("rendezvous: %d members: %s", len(members), ", ".join(f"{m.hostname}={m.address}" for m in members))
    return Joined(members, store)


class CoordinatorRendezvousPhase:
    """Rank 0 opens the job's coordination channel (its rendezvous: a small authenticated key-value store
    with barriers) and publishes its endpoint in the job directory: with the secret, the only things the
    nodes read from the shared filesystem."""

    name = "rendezvous"

    def execute(self, ctx: AgentContext) -> Joined:
        state = Rendezvous(ctx.slurm.nodes)
        server = RendezvousServer(ctx.address, ctx.config.rendezvous_port, ctx.job.read_secret(), state).start()
        ctx.on_teardown("stop the rendezvous", server.stop)
        ctx.on_teardown("close the rendezvous", lambda: state.close(f"{ctx.slurm.hostname}: the coordinator stopped"))
        state.on_change = lambda key: key == "member" and ctx.status.set_members(state.members())
        state.on_abort = ctx.abort
        ctx.channel = LocalChannel(state)
        endpoint = {"host": ctx.slurm.hostname, "address": ctx.address, "port": server.port}
        write_json(ctx.job.endpoint_file, endpoint)
        log.info("rendezvous: listening on %s:%d for %d nodes", ctx.address, server.port, ctx.slurm.node_count)
        return _register(ctx, endpoint, state)


class WorkerRendezvousPhase:
    """The other nodes find rank 0's endpoint, join the channel and watch it for an abort."""

    name = "rendezvous"

    def execute(self, ctx: AgentContext) -> Joined:
        deadline = time.monotonic() + ctx.config.rendezvous_timeout
        while (endpoint := ctx.job.read_json(ctx.job.endpoint_file)) is None:
            if time.monotonic() >= deadline:
                raise KsiError(
                    f"{ctx.slurm.hostname}: rank 0 ({ctx.slurm.coordinator_host}) did not publish its "
                    f"rendezvous in {ctx.job.endpoint_file} within {ctx.config.rendezvous_timeout:g} s",
                    f"see {ctx.job.log_file(ctx.slurm.coordinator_host)}")
            time.sleep(0.2)
        client = RendezvousClient(endpoint["address"], endpoint["port"], ctx.job.read_secret(), ctx.slurm.rank,
                                  ctx.slurm.hostname)
        ctx.channel = client
        watch = AbortWatch.for_nodes(ctx.slurm.node_count, client, ctx.abort).start()
        ctx.on_teardown("stop watching for an abort", watch.stop)
        return _register(ctx, endpoint)


def _unreachable(ctx, exc: RendezvousError, endpoint: dict, store: Rendezvous | None) -> KsiError:
    if store is not None:
        missing = store.missing("member")
        names = ", ".join(f"rank {r} ({h})" for r, h in missing)
        return KsiError(
            f"rendezvous timed out after {ctx.config.rendezvous_timeout:g} s: {len(missing)} of "
            f"{ctx.slurm.node_count} nodes never registered: {names}",
            f"see {ctx.job.path}/agent-<host>.log of those hosts; check that they reach "
            f"{ctx.slurm.hostname} ({ctx.address}) on TCP port {endpoint['port']}")
    where = endpoint
    return KsiError(
        f"{ctx.slurm.hostname}: cannot complete the rendezvous with rank 0 {where['host']} "
        f"({where['address']}, TCP port {where['port']}): {exc.cause}",
        f"check that {ctx.slurm.hostname} can reach {where['address']}:{where['port']} "
        "(firewall, cluster network)")
