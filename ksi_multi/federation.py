"""`federation: liqo`: one single-node cluster per host, peered into rank 0's (the hub) through Liqo.

Pure parts (each cluster's ranges, its Liqo cluster id, the liqoctl command lines) and where the Liqo build
of `ksi-multi image build --liqo` lies. The job's mesh routes every node's pod and Service range, so the
peerings use no network of Liqo's own (`--networking-disabled`): pods of different clusters reach each
other directly, as they do in one cluster.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ksi_multi import kubeadm
from ksi_multi.errors import KsiError
from ksi_multi.image import index as image_index
from ksi_multi.ranges import POD_PREFIX, Ranges

SERVICE_PREFIX = 24  # each cluster's Service range
BUILD_FIX = "build it once: ksi-multi image build --liqo (next to the node image, in image_dir)"


@dataclass(frozen=True)
class ClusterRanges:
    """The ranges of one node's own cluster: slices of the job's, so that no two clusters overlap."""

    pods: str
    services: str

    @property
    def dns(self) -> str:
        return str(ipaddress.IPv4Network(self.services)[10])


def cluster_ranges(rank: int, ranges: Ranges) -> ClusterRanges:
    services = list(ipaddress.IPv4Network(ranges.services).subnets(new_prefix=SERVICE_PREFIX))
    if rank >= len(services):
        raise KsiError(f"service_subnet {ranges.services} holds {len(services)} clusters of a /{SERVICE_PREFIX}, "
                       f"not {rank + 1}", "give service_subnet a shorter prefix (e.g. /16)")
    return ClusterRanges(pods=kubeadm.pod_cidr(rank, ranges.pods), services=str(services[rank]))


def max_clusters(ranges: Ranges) -> int:
    services = 1 << (SERVICE_PREFIX - ipaddress.IPv4Network(ranges.services).prefixlen)
    return min(services, ranges.max_nodes, 1 << (POD_PREFIX - ipaddress.IPv4Network(ranges.pods).prefixlen))


def cluster_id(hostname: str) -> str:
    """A Liqo cluster id (a DNS-1123 label) from the host's name."""
    label = re.sub(r"[^a-z0-9-]+", "-", hostname.lower()).strip("-")[:63].strip("-")
    return label or "node"


def kubeconfig_name(hostname: str) -> str:
    """The per-node kubeconfig in the job directory (the hub's is `kubeconfig` itself)."""
    return f"kubeconfig-{cluster_id(hostname)}"


@dataclass(frozen=True)
class LiqoTools:
    """The Liqo build in image_dir: liqoctl, the chart it installs from, the component images."""

    version: str
    liqoctl: Path
    chart: Path
    archive: Path
    images: dict[str, str]

    @classmethod
    def find(cls, image_dir: Path) -> LiqoTools:
        entry = (image_index.read(image_dir) or {}).get("liqo") or {}
        if not entry:
            raise KsiError(f"federation: liqo needs Liqo, and {image_dir} has no Liqo build", BUILD_FIX)
        tools = cls(entry["version"], image_dir / entry["liqoctl"], image_dir / entry["chart"],
                    image_dir / entry["archive"], dict(entry["images"]))
        missing = [str(p) for p in (tools.liqoctl, tools.chart / "Chart.yaml", tools.archive) if not p.is_file()]
        if missing:
            raise KsiError(f"the Liqo build in {image_dir} is incomplete: {', '.join(missing)} missing", BUILD_FIX)
        return tools

    def install_args(self, kubeconfig: Path, hostname: str, ranges: ClusterRanges, api_server: str,
                     timeout: float) -> list[str]:
        """liqoctl install for one node's cluster: the chart and images of this build, no Liqo network, nothing
        that phones home or exports metrics. `api_server`: where the other clusters reach this one's (its mesh
        address: the hub's controllers talk to it over the mesh, not through the host's forwarded port)."""
        values = {f"{key}.image.name": tag.rpartition(":")[0] for key, tag in self._image_keys().items()}
        values |= {"networking.enabled": "false", "metricAgent.enabled": "false", "telemetry.enabled": "false",
                   "proxy.enabled": "false", "pullPolicy": "IfNotPresent"}
        return [str(self.liqoctl), "install", "--kubeconfig", str(kubeconfig), "--api-server-url", api_server,
                "--cluster-id", cluster_id(hostname), "--local-chart-path", str(self.chart),
                "--version", self.version, "--pod-cidr", ranges.pods, "--service-cidr", ranges.services,
                # the kubeconfig has the host's forwarded port, Liqo the mesh address: both are the same server
                "--disable-api-server-sanity-check", "--disable-telemetry", "--timeout", f"{int(timeout)}s",
                *(arg for key, value in sorted(values.items()) for arg in ("--set", f"{key}={value}"))]

    def peer_args(self, hub: Path, provider: Path, timeout: float) -> list[str]:
        """liqoctl peer: the hub consumes the provider's resources through a virtual node."""
        return [str(self.liqoctl), "peer", "--kubeconfig", str(hub), "--remote-kubeconfig", str(provider),
                "--networking-disabled", "--timeout", f"{int(timeout)}s"]

    def _image_keys(self) -> dict[str, str]:
        from ksi_multi.image.liqo import COMPONENTS

        return {COMPONENTS[name]: tag for name, tag in self.images.items() if name in COMPONENTS}


FOREIGN_CLUSTERS = ("core.liqo.io", "v1beta1", "foreignclusters")
GOOD = {"Established", "Ready"}


def peering(foreign_cluster: dict) -> tuple[str, dict[str, str]]:
    """One ForeignCluster of the hub, for status.json: (its cluster id, {state, role, and the status of each
    condition the peering has: API server, identity, virtual node ...}). `state` is "ready" when every
    condition is Established or Ready, else the first that is not, as "CONDITION: STATUS"."""
    meta, status = foreign_cluster.get("metadata") or {}, foreign_cluster.get("status") or {}
    conditions = list(status.get("conditions") or [])
    for module in (status.get("modules") or {}).values():
        if isinstance(module, dict) and module.get("enabled"):
            conditions += module.get("conditions") or []
    fields = {str(c.get("type")): str(c.get("status")) for c in conditions if isinstance(c, dict)}
    bad = [f"{kind}: {state}" for kind, state in fields.items() if state not in GOOD]
    name = str((foreign_cluster.get("spec") or {}).get("clusterID") or meta.get("name", "?"))
    state = "ready" if fields and not bad else (bad[0] if bad else "pending")
    return name, {"state": state, "role": str(status.get("role", "Unknown")), **fields}


def peerings(api_client) -> dict[str, dict[str, str]] | None:
    """The hub's peerings (ForeignClusters) by cluster id; None while its API does not answer."""
    from kubernetes import client

    try:
        found = client.CustomObjectsApi(api_client).list_cluster_custom_object(*FOREIGN_CLUSTERS,
                                                                               _request_timeout=10)
    except Exception:  # the hub's API may be busy: the caller asks again
        return None
    return dict(peering(fc) for fc in found.get("items", []))


NAMESPACE_OFFLOADINGS = ("offloading.liqo.io", "v1beta1", "namespaceoffloadings")


def namespace_offloading(namespace: str) -> dict:
    """What `liqoctl offload namespace NS --namespace-mapping-strategy EnforceSameName --pod-offloading-strategy
    LocalAndRemote` creates: the namespace exists under the same name in every provider, pods run anywhere."""
    return {"apiVersion": "/".join(NAMESPACE_OFFLOADINGS[:2]), "kind": "NamespaceOffloading",
            "metadata": {"name": "offloading", "namespace": namespace},
            "spec": {"namespaceMappingStrategy": "EnforceSameName", "podOffloadingStrategy": "LocalAndRemote",
                     "clusterSelector": {"nodeSelectorTerms": []}}}


def offload(api_client, namespace: str, timeout: float) -> None:
    """Offload `namespace` of the hub to every provider; return once Liqo has made it there."""
    from kubernetes import client

    group, version, plural = NAMESPACE_OFFLOADINGS
    api = client.CustomObjectsApi(api_client)
    api.create_namespaced_custom_object(group, version, namespace, plural, namespace_offloading(namespace))
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        found = api.get_namespaced_custom_object(group, version, namespace, plural, "offloading", _request_timeout=10)
        phase = (found.get("status") or {}).get("offloadingPhase", "")
        if phase == "Ready":
            return
        time.sleep(1)
    raise KsiError(f"Liqo did not offload namespace {namespace} within {timeout:g} s (phase {phase or 'none'})",
                   f"see `kubectl -n {namespace} get namespaceoffloading offloading -o yaml` in the hub")
