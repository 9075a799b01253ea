"""`federation: liqo`: every node runs its own cluster with Liqo in it; rank 0's (the hub) peers with each
other one, whose resources then appear in the hub as a virtual node."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from ksi_multi import federation
from ksi_multi.errors import KsiError
from ksi_multi.jobhost import job_host
from ksi_multi.node import API_PORT_IN_NODE
from ksi_multi.phases.cluster import init_cluster, write_kubeconfig
from ksi_multi.phases.ready import kube_api, wait_until_ready
from ksi_multi.phases.results import ClusterUp
from ksi_multi.ranges import Ranges
from ksi_multi.rendezvous import RendezvousError
from ksi_multi.run import run

if TYPE_CHECKING:
    from pathlib import Path

    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")

INSTALL_TIMEOUT = 600.0
PEER_TIMEOUT = 300.0


def node_names(ctx: AgentContext) -> dict[str, str]:
    """Each host's node in the hub: rank 0's own, a virtual node named after every other's cluster."""
    hub = ctx.slurm.nodes[0]
    return {host: host if host == hub else federation.cluster_id(host) for host in ctx.slurm.nodes}


def kubeconfig_path(ctx: AgentContext, host: str) -> Path:
    return ctx.job.kubeconfig_file if host == ctx.slurm.nodes[0] else ctx.job.path / federation.kubeconfig_name(host)


def liqoctl_env(ctx: AgentContext) -> dict[str, str]:
    """liqoctl's Helm state and API discovery cache in the job's scratch on this host, not in a home directory
    every node shares (and that outlives the job)."""
    state = job_host(ctx.config, ctx.slurm.job_id).scratch / "liqoctl"
    return {"HELM_CACHE_HOME": str(state / "helm-cache"), "HELM_CONFIG_HOME": str(state / "helm-config"),
            "HELM_DATA_HOME": str(state / "helm-data"), "KUBECACHEDIR": str(state / "kube-cache")}


class OwnClusterPhase:
    """Every node: kubeadm init of its own cluster (its slice of the job's pod and Service ranges), its
    kubeconfig in the job directory, Liqo installed; then it tells rank 0."""

    name = "cluster"

    def execute(self, ctx: AgentContext) -> ClusterUp:
        tools = federation.LiqoTools.find(ctx.config.image_dir.expanduser())
        up = ctx.results.node_up
        job_ranges = Ranges.of(ctx.config)
        own = federation.cluster_ranges(ctx.slurm.rank, job_ranges)
        plan, admin = init_cluster(ctx, up, dataclasses.replace(job_ranges, pods=own.pods, services=own.services))
        kubeconfig = kubeconfig_path(ctx, ctx.slurm.hostname)
        write_kubeconfig(admin, plan, kubeconfig, f"ksi-{ctx.slurm.job_id}-{federation.cluster_id(ctx.slurm.hostname)}")
        started = time.monotonic()
        api_server = f"https://{ctx.results.mesh_up.node_ip}:{API_PORT_IN_NODE}"
        run(tools.install_args(kubeconfig, ctx.slurm.hostname, own, api_server, INSTALL_TIMEOUT),
            timeout=INSTALL_TIMEOUT + 60,
            extra_env=liqoctl_env(ctx), fix="see the Liqo pods: kubectl -n liqo get pods, with "
            f"KUBECONFIG={kubeconfig}")
        log.info("cluster: Liqo %s installed in %.1f s (cluster id %s, pods %s, services %s)", tools.version,
                 time.monotonic() - started, federation.cluster_id(ctx.slurm.hostname), own.pods, own.services)
        ctx.channel.put("federated", {}, time.monotonic() + ctx.config.ready_timeout)
        if ctx.slurm.is_coordinator:
            ctx.status.update(kubeconfig=str(kubeconfig), server=plan.server_url)
            log.info("cluster: the hub's kubeconfig for %s written to %s", plan.server_url, kubeconfig)
            return ClusterUp(plan, node_names(ctx))
        return ClusterUp(node_names=node_names(ctx))


class HubReadyPhase:
    """Rank 0: its own cluster Ready, then a Liqo peering with every other node's cluster, then every virtual
    node Ready in the hub; then it tells the others."""

    name = "ready"

    def execute(self, ctx: AgentContext) -> None:
        tools = federation.LiqoTools.find(ctx.config.image_dir.expanduser())
        names = ctx.results.cluster_up.node_names
        hub = ctx.slurm.hostname
        deadline = time.monotonic() + ctx.config.ready_timeout
        api = kube_api(ctx)
        wait_until_ready(ctx, api, {hub: names[hub]}, deadline)
        try:
            ctx.channel.wait_all("federated", deadline)
        except RendezvousError as exc:
            raise KsiError(f"not every node's cluster is up with Liqo: {exc.cause}",
                           "see the agent logs of the nodes named") from None
        for host in ctx.slurm.nodes[1:]:
            started = time.monotonic()
            run(tools.peer_args(kubeconfig_path(ctx, hub), kubeconfig_path(ctx, host), PEER_TIMEOUT),
                timeout=PEER_TIMEOUT + 60, extra_env=liqoctl_env(ctx),
                fix=f"see `kubectl get foreignclusters` in the hub and the Liqo pods of {host}")
            log.info("ready: peered with %s in %.1f s (virtual node %s)", host, time.monotonic() - started,
                     names[host])
        wait_until_ready(ctx, api, names, deadline)
        self._wait_for_peerings(ctx, api, {names[h] for h in ctx.slurm.nodes[1:]}, deadline)
        ctx.channel.put("ready", {"nodes": len(names)}, time.monotonic())
        ctx.status.update(state="ready")
        log.info("ready: the hub and %d peered cluster(s) Ready; export KUBECONFIG=%s", len(names) - 1,
                 ctx.job.kubeconfig_file)

    @staticmethod
    def _wait_for_peerings(ctx: AgentContext, api, providers: set[str], deadline: float) -> None:
        """Until Liqo calls every peering ready (API server, identity, virtual node), shown in status.json."""
        while True:
            found = federation.peerings(api.api_client) or {}
            ctx.status.update_if_changed(peerings=found)
            waiting = {p: found.get(p, {}).get("state", "not peered") for p in providers}
            waiting = {p: state for p, state in waiting.items() if state != "ready"}
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise KsiError(f"Liqo peerings not ready after {ctx.config.ready_timeout:g} s: "
                               + "; ".join(f"{p}: {state}" for p, state in sorted(waiting.items())),
                               "see `kubectl get foreignclusters` and the pods in namespace liqo, in the hub")
            time.sleep(1)
