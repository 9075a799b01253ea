from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ksi_multi.errors import KsiError
from ksi_multi.rendezvous import RendezvousError

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")


def kube_api(ctx, kubeconfig=None):
    """The Kubernetes API as the user sees it: through the job's kubeconfig (or `kubeconfig`), TLS verified."""
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig or ctx.job.kubeconfig_file)))


def is_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def ready_nodes(api) -> set[str] | None:
    """Names of the nodes Kubernetes calls Ready; None while the API does not answer."""
    try:
        nodes = api.list_node(_request_timeout=10).items
    except Exception as exc:  # the API server may still be settling: keep waiting
        log.debug("API not answering: %s", exc)
        return None
    return {n.metadata.name for n in nodes if is_ready(n)}


def dns_answers(pods) -> bool:
    return any(p.status.container_statuses and all(c.ready for c in p.status.container_statuses) for p in pods)


def watch_until(list_call, done: Callable[[list], bool], deadline: float, **selector) -> bool:
    """List the objects, then watch them change until `done(objects)` holds (True) or the deadline passes
    (False): the wait ends the moment the API server sees the change, not at the next poll."""
    from kubernetes import watch

    while time.monotonic() < deadline:
        try:
            listed = list_call(_request_timeout=10, **selector)
            seen = {o.metadata.name: o for o in listed.items}
            if done(list(seen.values())):
                return True
            stream = watch.Watch().stream(list_call, resource_version=listed.metadata.resource_version,
                                          timeout_seconds=max(1, int(deadline - time.monotonic())),
                                          _request_timeout=deadline - time.monotonic() + 10, **selector)
            for event in stream:
                obj = event["object"]
                if event["type"] == "DELETED":
                    seen.pop(obj.metadata.name, None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    seen[obj.metadata.name] = obj
                if done(list(seen.values())):
                    return True
        except Exception as exc:  # the API server may still be settling (or the watch expired): list again
            log.debug("API watch: %s", exc)
            time.sleep(0.5)
    return False


def wait_until_ready(ctx: AgentContext, api, names: dict[str, str], deadline: float) -> None:
    """Until the nodes (host -> its node's name in this cluster) are Ready and cluster DNS answers."""
    ready: set[str] = set()

    def all_ready(nodes) -> bool:
        ready.clear()
        ready.update(n.metadata.name for n in nodes if is_ready(n))
        ctx.status.set_node_fields({host: {"ready": name in ready} for host, name in names.items()})
        return set(names.values()) <= ready

    # (the watch finds the objects' type in the list method's docstring: pass it as it is, arguments as keywords)
    if watch_until(api.list_node, all_ready, deadline) and watch_until(
            api.list_namespaced_pod, dns_answers, deadline, namespace="kube-system", label_selector="k8s-app=kube-dns"):
        return
    missing = sorted(host for host, name in names.items() if name not in ready)
    raise KsiError(f"cluster not ready after {ctx.config.ready_timeout:g} s: "
                   + (f"nodes not Ready: {', '.join(missing)}" if missing else "CoreDNS not ready"),
                   "look at `kubectl get pods -A` with the job's kubeconfig")


class ReadyPhase:
    """Rank 0: wait until every node is Ready and cluster DNS answers, through the user's own kubeconfig;
    then tell the others."""

    name = "ready"

    def execute(self, ctx: AgentContext) -> None:
        names = ctx.results.cluster_up.node_names
        wait_until_ready(ctx, kube_api(ctx), names, time.monotonic() + ctx.config.ready_timeout)
        ctx.channel.put("ready", {"nodes": len(names)}, time.monotonic())
        ctx.status.update(state="ready")
        log.info("ready: %d node(s) Ready, DNS up; export KUBECONFIG=%s", len(names), ctx.job.kubeconfig_file)


class WorkerReadyPhase:
    """The other nodes: wait until rank 0 has found the cluster ready (so that `--until ready` ends every node
    only then)."""

    name = "ready"

    def execute(self, ctx: AgentContext) -> None:
        try:
            ctx.channel.wait_for("ready", 0, time.monotonic() + ctx.config.ready_timeout)
        except RendezvousError:
            raise KsiError(f"rank 0 ({ctx.slurm.coordinator_host}) did not find the cluster ready within "
                           f"{ctx.config.ready_timeout:g} s", f"see {ctx.job.log_file(ctx.slurm.coordinator_host)}"
                           ) from None
