from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ksi_multi import federation, node
from ksi_multi.errors import KsiError
from ksi_multi.loss import LossTracker, with_out_of_service
from ksi_multi.nodeports import NodePortFollower
from ksi_multi.phases.federated import kubeconfig_path
from ksi_multi.phases.ready import kube_api, ready_nodes

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext
    from ksi_multi.proxy import NodeProxy
    from ksi_multi.rendezvous import Rendezvous
    from netplugins import MeshPlugin

log = logging.getLogger("ksi_multi.agent")

HEARTBEAT = 5.0
SILENT = 30.0  # seconds without a worker agent's heartbeat before rank 0 gives its node up


class WaitPhase:
    """Hold the cluster for the job's lifetime.

    A worker whose node container dies tells rank 0, tears its own part down and stays in the job as a
    lost member (an exiting agent would end the whole step). Rank 0 marks lost workers in status.json
    and takes them out of service so their pods start again on the survivors. Rank 0's own node is the
    control plane: when it dies the cluster is gone and the job fails.
    """

    name = "wait"

    def execute(self, ctx: AgentContext) -> None:
        log.info("wait: cluster up; holding it until the job ends (scancel, time limit, ksi-multi down)")
        up, mesh = ctx.results.node_up, ctx.results.mesh_up.mesh
        watch = _Coordinator(ctx, ctx.results.joined.store, mesh) if ctx.slurm.is_coordinator else None
        # A host serves the NodePorts of the cluster its node is in: federated, its own cluster's.
        own = kubeconfig_path(ctx, ctx.slurm.hostname) if ctx.config.federation == "liqo" else None
        follower = NodePortFollower(lambda: kube_api(ctx, own), up.proxy.forward, ctx.slurm.hostname).start()
        ctx.on_teardown("stop following NodePorts", follower.stop)
        reported: dict = {}
        while True:
            state = node.state(up.home, up.spec.name)
            if state != "running":
                why = f"the node container {up.spec.name} is {state or 'gone'}"
                if watch:
                    raise KsiError(f"{ctx.slurm.hostname}: {why}; it runs the control plane",
                                   "see the agent log and `podman logs` in the job's store; start a new job")
                self._lost(ctx, why)
            fields = self._watch_helpers(ctx, up.proxy, mesh, follower)
            if fields != reported and self._report(ctx, watch, fields):
                reported = fields
            if watch:
                watch.beat()
            else:
                self._beat(ctx)
            time.sleep(HEARTBEAT)

    @staticmethod
    def _watch_helpers(ctx, proxy: NodeProxy, mesh: MeshPlugin | None, follower: NodePortFollower) -> dict:
        """This node's fields in status.json about its helpers: restarts of ksi-proxy and of the mesh's helper
        (a dead one is started again; a failure to do so ends this node) and which NodePorts listen here."""
        fields = {}
        proxy.check()
        if proxy.last_restart:
            fields["proxy"] = proxy.last_restart.describe()
        if mesh:
            mesh.check()
            if getattr(mesh, "last_restart", None):
                fields["mesh_helper"] = mesh.last_restart.describe()
        services, fields["nodeports"] = follower.snapshot()
        if ctx.status:
            ctx.status.update_if_changed(nodeports=services)
        return fields

    @staticmethod
    def _report(ctx, coordinator, fields: dict) -> bool:
        if coordinator:
            ctx.status.set_node_fields({ctx.slurm.hostname: fields})
            return True
        try:
            ctx.channel.put("node", fields, time.monotonic())  # one try
            return True
        except Exception as exc:  # tried again at the next heartbeat
            log.warning("wait: could not report this node's proxy state to rank 0: %s", exc)
            return False

    @staticmethod
    def _beat(ctx) -> None:
        """A worker's heartbeat: rank 0 gives up a node whose agent stops sending it (killed)."""
        try:
            ctx.channel.put("beat", {}, time.monotonic())  # one try
        except Exception as exc:  # tried again at the next heartbeat
            log.debug("wait: heartbeat to rank 0 failed: %s", exc)

    @staticmethod
    def _lost(ctx, why: str) -> None:
        from ksi_multi.agent import teardown_early

        log.error("wait: %s: %s is lost to the cluster; the other nodes go on", ctx.slurm.hostname, why)
        try:
            ctx.channel.put("lost", {"reason": why}, time.monotonic())  # one try
        except Exception as exc:  # rank 0 also notices through Kubernetes
            log.warning("wait: could not tell rank 0: %s", exc)
        teardown_early(ctx)
        log.info("wait: this node is torn down; waiting for the job to end")
        while True:
            time.sleep(3600)


class _Coordinator:
    """Rank 0's heartbeat: node readiness, lost workers, the mesh peers, into status.json."""

    def __init__(self, ctx, store: Rendezvous | None, mesh: MeshPlugin | None) -> None:
        self.ctx, self.store, self.mesh = ctx, store, mesh
        self.api = kube_api(ctx)
        self.names = ctx.results.cluster_up.node_names  # host -> its node in the user's cluster
        self.losses = LossTracker([h for h in ctx.slurm.nodes if h != ctx.slurm.hostname])

    def beat(self) -> None:
        ctx = self.ctx
        nodes = ready_nodes(self.api)
        ready = None if nodes is None else {host for host, name in self.names.items() if name in nodes}
        reported = self.store.lost_hosts() if self.store else {}
        silent = self.store.silent("beat", SILENT) if self.store else {}
        for name, why in self.losses.observe(time.time(), ready, reported, silent).items():
            log.warning("wait: node %s lost (%s); taking it out of service so its pods start elsewhere", name, why)
            self._out_of_service(self.names.get(name, name))
        fields = {name: {"lost": why} for name, why in self.losses.lost.items()}
        for name, reported in (self.store.node_reports() if self.store else {}).items():
            fields.setdefault(name, {}).update(reported)
        if ready is not None:
            for name in ctx.slurm.nodes:
                fields.setdefault(name, {})["ready"] = name in ready
        ctx.status.set_node_fields(fields)
        ctx.status.update(heartbeat=time.time(), **self._mesh(), **self._peerings())

    def _peerings(self) -> dict:
        """federation: liqo: the state of each Liqo peering of the hub."""
        if self.ctx.config.federation != "liqo":
            return {}
        found = federation.peerings(self.api.api_client)
        return {} if found is None else {"peerings": found}

    def _out_of_service(self, name: str) -> None:
        try:
            current = self.api.read_node(name, _request_timeout=10).spec.taints or []
            taints = with_out_of_service([self.api.api_client.sanitize_for_serialization(t) for t in current])
            self.api.patch_node(name, {"spec": {"taints": taints}}, _request_timeout=10)
        except Exception as exc:  # status still shows the loss; Kubernetes evicts on its own, only later
            log.warning("wait: could not taint %s out of service: %s", name, exc)

    def _mesh(self) -> dict:
        """Rank 0's view of the mesh: what the plugin knows per peer (last handshake, bytes)."""
        if self.mesh is None:
            return {}
        try:
            return {"mesh": self.mesh.peers()}
        except Exception as exc:  # a failed query must not end the job; it shows in the log
            log.warning("wait: cannot read the mesh state: %s", exc)
            return {}
