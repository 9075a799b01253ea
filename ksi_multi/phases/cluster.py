from __future__ import annotations

import logging
import time

from ksi_multi import kubeadm
from ksi_multi.jobdir import write_private

log = logging.getLogger("ksi_multi.agent")

ADMIN = ["--kubeconfig", "/etc/kubernetes/admin.conf"]


class ClusterPhase:
    """kubeadm init on rank 0 (rootless settings), CNI, storage, and the user's kubeconfig."""

    name = "cluster"

    def execute(self, ctx) -> None:
        home, node = ctx.podman, ctx.node
        version = home.podman("exec", node.name, "kubeadm", "version", "-o", "short").stdout.strip()
        plan = kubeadm.ClusterPlan(job_id=ctx.slurm.job_id, kubernetes_version=version, node_name=ctx.slurm.hostname,
                                   node_ip=ctx.node_ip, host_address=ctx.address,
                                   api_server_port=ctx.config.api_server_port, token=kubeadm.bootstrap_token())
        ctx.cluster = plan
        self._write(ctx, "/etc/cni/net.d/10-ksi.conflist", kubeadm.cni_config(kubeadm.pod_cidr(ctx.slurm.rank)))
        self._write(ctx, "/ksi/kubeadm.yaml", kubeadm.init_config(plan), secrets=[plan.token])
        started = time.monotonic()
        home.podman("exec", node.name, "kubeadm", "init", "--config", "/ksi/kubeadm.yaml", "--skip-token-print",
                    "--skip-phases=preflight", timeout=600, secrets=[plan.token],
                    fix="see the kubelet's log: journalctl -u kubelet inside the node container")
        log.info("cluster: kubeadm init done in %.1f s", time.monotonic() - started)
        kubectl = ["exec", "-i", node.name, "kubectl", *ADMIN]
        home.podman(*kubectl, "apply", "-f", "-", input=kubeadm.STORAGE_CLASS)
        if ctx.slurm.node_count == 1:
            home.podman(*kubectl, "taint", "nodes", "--all", "node-role.kubernetes.io/control-plane-")
        admin = home.podman("exec", node.name, "cat", "/etc/kubernetes/admin.conf").stdout
        write_private(ctx.job.kubeconfig_file, kubeadm.user_kubeconfig(admin, plan))
        ctx.status.update(kubeconfig=str(ctx.job.kubeconfig_file))
        log.info("cluster: kubeconfig for %s written to %s", plan.server_url, ctx.job.kubeconfig_file)

    @staticmethod
    def _write(ctx, path: str, text: str, secrets=()) -> None:
        ctx.podman.podman("exec", "-i", ctx.node.name, "sh", "-c", f'mkdir -p "$(dirname {path})" && cat > {path}',
                          input=text, secrets=secrets)
