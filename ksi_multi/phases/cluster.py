from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ksi_multi import kubeadm
from ksi_multi.channel import seal, unseal
from ksi_multi.errors import KsiError
from ksi_multi.jobdir import write_private
from ksi_multi.phases.results import ClusterUp, NodeUp
from ksi_multi.ranges import Ranges
from ksi_multi.rendezvous import RendezvousError

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")

ADMIN = ["--kubeconfig", "/etc/kubernetes/admin.conf"]
JOIN_FIELDS = ("endpoint", "token", "ca_cert_hash")
# kubelet-finalize only points the kubelet at a rotating client certificate and restarts it: its first one
# lasts a year, far longer than any job, and the restart cost every start a second or two.
SKIPPED = "preflight,kubelet-finalize"
KUBELET_HINT = "see the kubelet's log: journalctl -u kubelet inside the node container"


def _pod_network(ctx) -> tuple[dict[str, str], list[str]]:
    """This node's pod range: the CNI configuration, and masquerading for pods leaving the pod network."""
    ranges = Ranges.of(ctx.config)
    pods = kubeadm.pod_cidr(ctx.slurm.rank, ranges.pods)
    return ({"/etc/cni/net.d/10-ksi.conflist": kubeadm.cni_config(pods, ctx.results.mesh_up.pod_mtu)},
            ["iptables", "-w", "5", "-A", *kubeadm.masquerade_rule(pods, ranges.pods)])


def _in_node(up: NodeUp, script: str, secrets=(), timeout: float = 120, fix: str | None = None) -> str:
    """Run a kubeadm.node_script in the node (one exec); its standard output."""
    return up.home.podman("exec", "-i", up.spec.name, "sh", "-es", input=script, secrets=secrets,
                          timeout=timeout, fix=fix).stdout


def init_cluster(ctx: AgentContext, up: NodeUp, ranges: Ranges) -> tuple[kubeadm.ClusterPlan, str]:
    """kubeadm init on this node (rootless settings, no control-plane taint) and the default storage class;
    the plan and the cluster's admin.conf. Two execs into the node: every exec costs time on a busy host."""
    files, masquerade = _pod_network(ctx)
    files.update({f"{kubeadm.PATCHES_DIR}/{name}": text for name, text in kubeadm.PATCHES.items()})
    files["/ksi/storage-class.yaml"] = kubeadm.STORAGE_CLASS
    version = _in_node(up, kubeadm.node_script(files, [masquerade, ["kubeadm", "version", "-o", "short"]],
                                               quiet=1)).strip()
    plan = kubeadm.ClusterPlan(job_id=ctx.slurm.job_id, kubernetes_version=version, node_name=ctx.slurm.hostname,
                               node_ip=ctx.results.mesh_up.node_ip, host_address=ctx.address,
                               api_server_port=up.spec.api_port, token=kubeadm.bootstrap_token(), ranges=ranges)
    started = time.monotonic()
    admin = _in_node(up, kubeadm.node_script(
        {"/ksi/kubeadm.yaml": kubeadm.init_config(plan)},
        [["kubeadm", "init", "--config", "/ksi/kubeadm.yaml", "--skip-token-print", f"--skip-phases={SKIPPED}"],
         ["kubectl", *ADMIN, "apply", "-f", "/ksi/storage-class.yaml"],
         ["cat", "/etc/kubernetes/admin.conf"]], quiet=2),
        secrets=[plan.token], timeout=600, fix=KUBELET_HINT)
    log.info("cluster: kubeadm init done in %.1f s", time.monotonic() - started)
    return plan, admin


def write_kubeconfig(admin: str, plan: kubeadm.ClusterPlan, path: Path, name: str) -> None:
    """The user's kubeconfig for this node's API server: the host's forwarded port, TLS verified."""
    write_private(path, kubeadm.user_kubeconfig(admin, plan, name))


class ClusterInitPhase:
    """Rank 0: kubeadm init (rootless settings), storage, the join material for the others, the kubeconfig."""

    name = "cluster"

    def execute(self, ctx: AgentContext) -> ClusterUp:
        up = ctx.results.node_up
        plan, admin = init_cluster(ctx, up, Ranges.of(ctx.config))
        if ctx.slurm.node_count > 1:
            # Through the coordination channel, sealed with the job secret: never readable on the network.
            join = kubeadm.join_material(plan, admin)
            ctx.channel.put("join", {"sealed": seal(ctx.job.read_secret(), join)}, time.monotonic())
        write_kubeconfig(admin, plan, ctx.job.kubeconfig_file, f"ksi-{ctx.slurm.job_id}")
        ctx.status.update(kubeconfig=str(ctx.job.kubeconfig_file), server=plan.server_url)
        log.info("cluster: kubeconfig for %s written to %s", plan.server_url, ctx.job.kubeconfig_file)
        return ClusterUp(plan, {h: h for h in ctx.slurm.nodes})


class ClusterJoinPhase:
    """The other nodes: kubeadm join over the mesh, with the join material rank 0 published."""

    name = "cluster"

    def execute(self, ctx: AgentContext) -> ClusterUp:
        up = ctx.results.node_up
        try:
            sealed = ctx.channel.wait_for("join", 0, time.monotonic() + ctx.config.ready_timeout)
        except RendezvousError:
            raise KsiError(f"{ctx.slurm.hostname}: rank 0 ({ctx.slurm.coordinator_host}) published no join "
                           f"material within {ctx.config.ready_timeout:g} s",
                           f"see {ctx.job.log_file(ctx.slurm.coordinator_host)}") from None
        join = unseal(ctx.job.read_secret(), sealed.get("sealed", "") if isinstance(sealed, dict) else "")
        if not isinstance(join, dict) or not all(isinstance(join.get(k), str) for k in JOIN_FIELDS):
            raise KsiError("the join material from rank 0 is malformed", "start the job again")
        files, masquerade = _pod_network(ctx)
        files["/ksi/kubeadm-join.yaml"] = kubeadm.join_config(ctx.slurm.job_id, ctx.slurm.hostname,
                                                              ctx.results.mesh_up.node_ip, join)
        started = time.monotonic()
        _in_node(up, kubeadm.node_script(files, [masquerade, ["kubeadm", "join", "--config", "/ksi/kubeadm-join.yaml",
                                                              "--skip-phases=preflight"]], quiet=2),
                 secrets=[join["token"]], timeout=600, fix=KUBELET_HINT)
        log.info("cluster: joined %s in %.1f s", join["endpoint"], time.monotonic() - started)
        return ClusterUp(node_names={h: h for h in ctx.slurm.nodes})
