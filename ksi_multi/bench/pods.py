"""The benchmark's pods and Services in a namespace of their own, through the job's kubeconfig (TLS
verified): iperf3 and the latency probe's servers on two nodes, a client beside the first, and commands
run in the client as `kubectl exec` would."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from ksi_multi import federation
from ksi_multi.errors import KsiError

IPERF_PORT = 5201
PROBE_PORT = 5301
OFFLOAD_TIMEOUT = 120.0
SERVER_COMMAND = f'iperf3 -s -p {IPERF_PORT} & exec python3 -c "$PROBE" serve 0.0.0.0 {PROBE_PORT} 86400'


class BenchPods:
    def __init__(self, kubeconfig: Path, image: str, federated: bool = False) -> None:
        from kubernetes import client, config

        self.api_client = config.new_client_from_config(str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.image = image
        self.federated = federated  # federation: liqo: the other nodes are virtual nodes of the hub
        self.namespace = f"ksi-bench-{secrets.token_hex(3)}"

    def _pod(self, name: str, node: str, command: list[str], labels: dict[str, str], env: dict[str, str]) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                "spec": {"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "bench", "image": self.image, "imagePullPolicy": "IfNotPresent",
                                         "command": command, "env": [{"name": k, "value": v} for k, v in env.items()]}]}}

    def create(self, a: str, b: str, probe: str) -> None:
        """Servers on a (same-node pair) and b (across nodes, and behind the Services), the client on a."""
        self.core.create_namespace({"metadata": {"name": self.namespace, "labels": {"app": "ksi-bench"}}})
        if self.federated:
            federation.offload(self.api_client, self.namespace, OFFLOAD_TIMEOUT)
        for name, node in (("server-a", a), ("server-b", b)):
            self.core.create_namespaced_pod(self.namespace, self._pod(
                name, node, ["sh", "-c", SERVER_COMMAND], {"app": "ksi-bench", "role": name}, {"PROBE": probe}))
        self.core.create_namespaced_pod(self.namespace, self._pod("client", a, ["sleep", "86400"],
                                                                  {"app": "ksi-bench", "role": "client"}, {}))
        ports = [{"name": "iperf", "port": IPERF_PORT, "protocol": "TCP"},
                 {"name": "probe", "port": PROBE_PORT, "protocol": "TCP"}]
        self.core.create_namespaced_service(self.namespace, {
            "metadata": {"name": "server"},
            "spec": {"selector": {"role": "server-b"},
                     "ports": [*ports, {"name": "iperf-udp", "port": IPERF_PORT, "protocol": "UDP"}]}})
        self.core.create_namespaced_service(self.namespace, {
            "metadata": {"name": "server-nodeport"},
            "spec": {"type": "NodePort", "selector": {"role": "server-b"}, "ports": ports}})

    def wait_running(self, timeout: float) -> dict[str, str]:
        """Pod name -> pod IP once every pod runs; a clear error naming the pods that do not."""
        deadline = time.monotonic() + timeout
        while True:
            pods = self.core.list_namespaced_pod(self.namespace, _request_timeout=10).items
            running = {p.metadata.name: p.status.pod_ip for p in pods if p.status.phase == "Running" and p.status.pod_ip}
            if len(running) == 3:
                return running
            if time.monotonic() > deadline:
                waiting = {p.metadata.name: _why(p) for p in pods if p.metadata.name not in running}
                raise KsiError(f"bench: pods not running after {timeout:g} s: "
                               + ", ".join(f"{n} ({w})" for n, w in sorted(waiting.items())),
                               f"see `kubectl -n {self.namespace} describe pods`")
            time.sleep(1)

    def service(self) -> tuple[str, dict[str, int]]:
        """The ClusterIP Service's address and the NodePorts (by port name) of the NodePort Service."""
        cluster_ip = self.core.read_namespaced_service("server", self.namespace).spec.cluster_ip
        node_ports = {p.name: p.node_port
                      for p in self.core.read_namespaced_service("server-nodeport", self.namespace).spec.ports}
        return cluster_ip, node_ports

    def exec(self, pod: str, command: list[str], timeout: float) -> tuple[int | None, str]:
        """Run in the pod; (exit code, stdout + stderr); exit code None when it did not end in time."""
        from kubernetes.stream import stream

        resp = stream(self.core.connect_get_namespaced_pod_exec, pod, self.namespace, command=command,
                      stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        try:
            resp.run_forever(timeout=timeout)
            done = not resp.is_open()
            text = resp.read_stdout() + resp.read_stderr()
            return (resp.returncode if done else None), text
        finally:
            resp.close()

    def delete(self) -> None:
        """The namespace and everything in it (Kubernetes finishes in the background)."""
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespace(self.namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _why(pod: Any) -> str:
    for c in pod.status.container_statuses or []:
        if c.state.waiting and c.state.waiting.reason:
            return c.state.waiting.reason
    return pod.status.phase or "unknown"
