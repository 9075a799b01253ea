from __future__ import annotations

import logging
import time

from ksi_multi.errors import KsiError

log = logging.getLogger("ksi_multi.agent")


class ReadyPhase:
    """Wait until every node is Ready and cluster DNS answers, through the user's own kubeconfig."""

    name = "ready"

    def execute(self, ctx) -> None:
        if not ctx.slurm.is_coordinator:
            return
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(ctx.job.kubeconfig_file)))
        deadline = time.monotonic() + ctx.config.ready_timeout
        want = set(ctx.slurm.nodes)
        while True:
            ready, dns = self._look(api)
            self._report(ctx, ready)
            if want <= ready and dns:
                break
            if time.monotonic() > deadline:
                missing = sorted(want - ready)
                raise KsiError(f"cluster not ready after {ctx.config.ready_timeout:g} s: "
                               + (f"nodes not Ready: {', '.join(missing)}" if missing else "CoreDNS not ready"),
                               "look at `kubectl get pods -A` with the job's kubeconfig")
            time.sleep(1)
        ctx.status.update(state="ready")
        log.info("ready: %d node(s) Ready, DNS up; export KUBECONFIG=%s", len(want), ctx.job.kubeconfig_file)

    @staticmethod
    def _look(api) -> tuple[set[str], bool]:
        try:
            nodes = api.list_node(_request_timeout=10).items
            pods = api.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns", _request_timeout=10).items
        except Exception as exc:  # the API server may still be settling: keep waiting
            log.debug("ready: API not answering yet: %s", exc)
            return set(), False
        ready = {n.metadata.name for n in nodes
                 if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])}
        dns = any(all(c.ready for c in (p.status.container_statuses or [])) and p.status.container_statuses
                  for p in pods)
        return ready, dns

    @staticmethod
    def _report(ctx, ready: set[str]) -> None:
        nodes = [{**n, "ready": n["name"] in ready} for n in ctx.status.data["nodes"]]
        if nodes != ctx.status.data["nodes"]:
            ctx.status.update(nodes=nodes)
