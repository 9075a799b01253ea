"""What each phase hands to the later ones: a typed result, returned by its `execute` and recorded by the
runner under the phase's name. A phase reads earlier results through the accessors, which say which
phase has not run instead of failing on a missing attribute."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ksi_multi.kubeadm import ClusterPlan
    from ksi_multi.node import NodeSpec
    from ksi_multi.podman import PodmanHome
    from ksi_multi.proxy import NodeProxy
    from ksi_multi.rendezvous import Rendezvous
    from netplugins import MeshPlugin

T = TypeVar("T")


@dataclass(frozen=True)
class Member:
    rank: int
    hostname: str
    address: str  # on the cluster network


@dataclass(frozen=True)
class Joined:
    """The rendezvous: every node of the job, by rank; rank 0 also keeps the job's store (loss reports,
    heartbeats) for the job's lifetime."""

    members: tuple[Member, ...]
    store: Rendezvous | None = None


@dataclass(frozen=True)
class NodeUp:
    """This host's node container, booted, with its podman store and its ksi-proxy."""

    home: PodmanHome
    spec: NodeSpec  # with the host ports it forwards: the API server's (rank 0), the mesh's (forwarded meshes)
    proxy: NodeProxy


@dataclass(frozen=True)
class MeshUp:
    """This node's Kubernetes address and pod MTU; the running mesh (none for a single node)."""

    node_ip: str
    pod_mtu: int | None = None
    mesh: MeshPlugin | None = None


@dataclass(frozen=True)
class ClusterUp:
    """Kubernetes runs on this node; rank 0 holds the plan of the cluster users work in (the hub's, when
    federated). `node_names`: each host's node as that cluster names it (a Liqo virtual node for the others)."""

    plan: ClusterPlan | None = None
    node_names: dict[str, str] = field(default_factory=dict)


RESULT_TYPES: dict[str, type] = {"rendezvous": Joined, "node": NodeUp, "mesh": MeshUp, "cluster": ClusterUp}


@dataclass
class Results:
    rendezvous: Joined | None = None
    node: NodeUp | None = None
    mesh: MeshUp | None = None
    cluster: ClusterUp | None = None

    def record(self, phase: str, result: object) -> None:
        """Keep what a phase returned; a phase without a result type returns nothing."""
        expected = RESULT_TYPES.get(phase)
        if expected is None:
            if result is not None:
                raise TypeError(f"phase {phase} returned {type(result).__name__}; it has no result")
            return
        if not isinstance(result, expected):
            raise TypeError(f"phase {phase} returned {type(result).__name__}, not {expected.__name__}")
        setattr(self, phase, result)

    @property
    def joined(self) -> Joined:
        return _need("rendezvous", self.rendezvous)

    @property
    def node_up(self) -> NodeUp:
        return _need("node", self.node)

    @property
    def mesh_up(self) -> MeshUp:
        return _need("mesh", self.mesh)

    @property
    def cluster_up(self) -> ClusterUp:
        return _need("cluster", self.cluster)


def _need(phase: str, result: T | None) -> T:
    if result is None:
        raise RuntimeError(f"phase {phase} has not run: its result is needed here")
    return result
