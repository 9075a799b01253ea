"""NodePort Services on every allocated host: each agent follows the Services through the Kubernetes API and
tells its ksi-proxy which ports to listen on (on the host's address). A port someone else holds on a host is
reported (status.json and a Warning Event on the Service), never fatal."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("ksi_multi.agent")

RETRY = 30.0  # seconds between attempts at ports whose listener could not be made


def node_ports(services: Iterable[Any]) -> dict[int, str]:
    """TCP NodePorts of the Services (NodePort and LoadBalancer types) -> "namespace/name"."""
    out = {}
    for svc in services:
        if svc.spec.type not in ("NodePort", "LoadBalancer"):
            continue
        for port in svc.spec.ports or []:
            if port.node_port and (port.protocol or "TCP") == "TCP":
                out[port.node_port] = f"{svc.metadata.namespace}/{svc.metadata.name}"
    return out


class NodePortFollower:
    """A thread that keeps the proxy's NodePort listeners equal to the cluster's NodePort Services."""

    def __init__(self, api_factory: Callable[[], Any], forward: Callable[[Iterable[int]], dict[int, str]],
                 hostname: str) -> None:
        self.api_factory = api_factory
        self.forward = forward
        self.hostname = hostname
        self.services: dict[str, Any] = {}  # uid -> Service
        self.wanted: dict[int, str] = {}
        self.results: dict[int, str] = {}
        self.warned: set[tuple[int, str]] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.last_try = 0.0
        self.thread = threading.Thread(target=self._run, name="nodeports", daemon=True)

    def start(self) -> NodePortFollower:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        """(port -> Service, port -> "ok" or why this host has no listener), for status.json."""
        with self.lock:
            return ({str(p): s for p, s in sorted(self.wanted.items())},
                    {str(p): r for p, r in sorted(self.results.items())})

    def _run(self) -> None:
        from kubernetes import watch

        api = None
        while not self.stopped.is_set():
            try:
                api = api or self.api_factory()
                listed = api.list_service_for_all_namespaces(_request_timeout=30)
                self.services = {s.metadata.uid: s for s in listed.items}
                self._apply(api)
                stream = watch.Watch().stream(api.list_service_for_all_namespaces, timeout_seconds=int(RETRY),
                                              resource_version=listed.metadata.resource_version)
                for event in stream:
                    svc = event["object"]
                    if event["type"] == "DELETED":
                        self.services.pop(svc.metadata.uid, None)
                    else:
                        self.services[svc.metadata.uid] = svc
                    self._apply(api)
                    if self.stopped.is_set():
                        return
            except Exception as exc:  # the API server restarting, a watch expiring: list again
                log.debug("nodeports: %s", exc)
                self.stopped.wait(2)

    def _apply(self, api) -> None:
        wanted = node_ports(self.services.values())
        failing = any(r != "ok" for r in self.results.values())
        if wanted.keys() == self.results.keys() and not (failing and time.monotonic() - self.last_try > RETRY):
            with self.lock:
                self.wanted = wanted
            return
        self.last_try = time.monotonic()
        results = self.forward(wanted)
        for port in sorted(set(results) - set(self.results)):
            log.info("nodeports: %s:%d (%s): %s", self.hostname, port, wanted.get(port), results[port])
        for port in sorted(set(self.results) - set(results)):
            log.info("nodeports: %s:%d closed", self.hostname, port)
        with self.lock:
            self.wanted, self.results = wanted, results
        for port, result in results.items():
            if result != "ok" and (port, result) not in self.warned:
                self.warned.add((port, result))
                self._warn(api, port, result)

    def _warn(self, api, port: int, why: str) -> None:
        """A Warning Event on the Service whose NodePort this host cannot offer."""
        from kubernetes import client

        svc = next((s for s in self.services.values() if port in node_ports([s])), None)
        if svc is None:
            return
        now = datetime.datetime.now(datetime.UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{svc.metadata.name}.ksi-multi-"),
            involved_object=client.V1ObjectReference(kind="Service", api_version="v1", name=svc.metadata.name,
                                                     namespace=svc.metadata.namespace, uid=svc.metadata.uid),
            reason="NodePortUnavailable", type="Warning", count=1, first_timestamp=now, last_timestamp=now,
            message=f"port {port} cannot be offered on host {self.hostname}: {why}",
            source=client.V1EventSource(component="ksi-multi", host=self.hostname))
        try:
            api.create_namespaced_event(svc.metadata.namespace, event, _request_timeout=10)
        except Exception as exc:  # status.json still says it
            log.warning("nodeports: could not post the event for port %d: %s", port, exc)
        log.warning("nodeports: %s:%d (%s/%s): %s", self.hostname, port, svc.metadata.namespace, svc.metadata.name,
                    why)
