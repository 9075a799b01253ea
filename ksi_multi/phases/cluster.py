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
KUBELET_HINT = "see the kubelet's log: journalctl -u kubelet inside the node container"


def _pod_network(ctx, up: NodeUp) -> None:
    """This node's pod range: the CNI configuration, and masquerading for pods leaving the pod network."""
    ranges = Ranges.of(ctx.config)
    pods = kubeadm.pod_cidr(ctx.slurm.rank, ranges.pods)
    _write(up, "/etc/cni/net.d/10-ksi.conflist", kubeadm.cni_config(pods, ctx.results.mesh_up.pod_mtu))
    up.home.podman("exec", up.spec.name, "iptables", "-w", "5", "-A", *kubeadm.masquerade_rule(pods, ranges.pods))


def _write(up: NodeUp, path: str, text: str, secrets=()) -> None:
    up.home.podman("exec", "-i", up.spec.name, "sh", "-c", f'mkdir -p "$(dirname {path})" && cat > {path}',
                   input=text, secrets=secrets)


def init_cluster(ctx: AgentContext, up: NodeUp, ranges: Ranges) -> kubeadm.ClusterPlan:
    """kubeadm init on this node (rootless settings, no control-plane taint), the default storage class."""
    _pod_network(ctx, up)
    home, node = up.home, up.spec
    version = home.podman("exec", node.name, "kubeadm", "version", "-o", "short").stdout.strip()
    plan = kubeadm.ClusterPlan(job_id=ctx.slurm.job_id, kubernetes_version=version, node_name=ctx.slurm.hostname,
                               node_ip=ctx.results.mesh_up.node_ip, host_address=ctx.address,
                               api_server_port=up.spec.api_port, token=kubeadm.bootstrap_token(), ranges=ranges)
    _write(up, "/ksi/kubeadm.yaml", kubeadm.init_config(plan), secrets=[plan.token])
    for name, text in kubeadm.PATCHES.items():
        _write(up, f"{kubeadm.PATCHES_DIR}/{name}", text)
    started = time.monotonic()
    home.podman("exec", node.name, "kubeadm", "init", "--config", "/ksi/kubeadm.yaml", "--skip-token-print",
                "--skip-phases=preflight", timeout=600, secrets=[plan.token], fix=KUBELET_HINT)
    log.info("cluster: kubeadm init done in %.1f s", time.monotonic() - started)
    home.podman("exec", "-i", node.name, "kubectl", *ADMIN, "apply", "-f", "-", input=kubeadm.STORAGE_CLASS)
    return plan


def write_kubeconfig(up: NodeUp, plan: kubeadm.ClusterPlan, path: Path, name: str) -> None:
    """The user's kubeconfig for this node's API server: the host's forwarded port, TLS verified."""
    admin = up.home.podman("exec", up.spec.name, "cat", "/etc/kubernetes/admin.conf").stdout
    write_private(path, kubeadm.user_kubeconfig(admin, plan, name))


class ClusterInitPhase:
    """Rank 0: kubeadm init (rootless settings), storage, the join material for the others, the kubeconfig."""

    name = "cluster"

    def execute(self, ctx: AgentContext) -> ClusterUp:
        up = ctx.results.node_up
        plan = init_cluster(ctx, up, Ranges.of(ctx.config))
        if ctx.slurm.node_count > 1:
            command = up.home.podman("exec", up.spec.name, "kubeadm", "token", "create", "--ttl", "2h",
                                     "--print-join-command", *ADMIN).stdout
            # Through the coordination channel, sealed with the job secret: never readable on the network.
            join = kubeadm.parse_join_command(command)
            ctx.channel.put("join", {"sealed": seal(ctx.job.read_secret(), join)}, time.monotonic())
        write_kubeconfig(up, plan, ctx.job.kubeconfig_file, f"ksi-{ctx.slurm.job_id}")
        ctx.status.update(kubeconfig=str(ctx.job.kubeconfig_file), server=plan.server_url)
        log.info("cluster: kubeconfig for %s written to %s", plan.server_url, ctx.job.kubeconfig_file)
        return ClusterUp(plan, {h: h for h in ctx.slurm.nodes})


class ClusterJoinPhase:
    """The other nodes: kubeadm join over the mesh, with the join material rank 0 published."""

    name = "cluster"

    def execute(self, ctx: AgentContext) -> ClusterUp:
        up = ctx.results.node_up
        _pod_network(ctx, up)
        try:
            sealed = ctx.channel.wait_for("join", 0, time.monotonic() + ctx.config.ready_timeout)
        except RendezvousError:
            raise KsiError(f"{ctx.slurm.hostname}: rank 0 ({ctx.slurm.coordinator_host}) published no join "
                           f"material within {ctx.config.ready_timeout:g} s",
                           f"see {ctx.job.log_file(ctx.slurm.coordinator_host)}") from None
        join = unseal(ctx.job.read_secret(), sealed.get("sealed", "") if isinstance(sealed, dict) else "")
        if not isinstance(join, dict) or not all(isinstance(join.get(k), str) for k in JOIN_FIELDS):
            raise KsiError("the join material from rank 0 is malformed", "start the job again")
        config = kubeadm.join_config(ctx.slurm.job_id, ctx.slurm.hostname, ctx.results.mesh_up.node_ip, join)
        _write(up, "/ksi/kubeadm-join.yaml", config, secrets=[join["token"]])
        started = time.monotonic()
        up.home.podman("exec", up.spec.name, "kubeadm", "join", "--config", "/ksi/kubeadm-join.yaml",
                       "--skip-phases=preflight", timeout=600, secrets=[join["token"]], fix=KUBELET_HINT)
        log.info("cluster: joined %s in %.1f s", join["endpoint"], time.monotonic() - started)
        return ClusterUp(node_names={h: h for h in ctx.slurm.nodes})
