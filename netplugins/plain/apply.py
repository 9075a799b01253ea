"""Applying a node's plan with `ksi-wg plain`: the TUN inside the node, the UDP socket on the host (as the
default `wireguard` mesh), but no encryption and no per-packet path: each GSO super-packet crosses as one
UDP_SEGMENT send and is rebuilt from UDP_GRO on the far side. Datagrams count only from the job's peers
and with the job's tag (derived from the job's secret). For trusted cluster networks only: anyone on the
path reads and can forge the pods' traffic."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.run import Restart, output, restarted, start_helper, stop
from netplugins import OVERHEAD, NodeAccess, probe, topology
from netplugins.topology import Member, NodePlan


class PlainMesh:
    name = "plain"

    def __init__(self, node: NodeAccess) -> None:
        self.node = node
        self.binary = node.tools.get("ksi-wg", Path("ksi-wg"))
        self.log = node.workdir / "ksi-wg-plain.log"
        self.status = node.runtime / "plain.sock"
        self.proc: subprocess.Popen | None = None
        self.node_plan: NodePlan | None = None
        self.path_mtu = 1500
        self.last_restart: Restart | None = None

    def prepare(self) -> dict:
        if not self.binary.exists():
            raise KsiError(f"the mesh helper {self.binary} does not exist",
                           "build the images again (ksi-multi image build) so that ksi-wg is next to them")
        if self.node.secret_file is None or not self.node.secret_file.is_file():
            raise KsiError("the plain mesh needs the job's secret (its tag)", "start the job with ksi-multi's batch script")
        return {}

    def plan(self, members: Sequence[Member], path_mtu: int, mtu: int | None, mesh_cidr: str,
             pod_subnet: str) -> dict[int, NodePlan]:
        self.path_mtu = path_mtu
        return topology.plan(members, OVERHEAD["plain"], path_mtu, mtu, mesh_cidr=mesh_cidr, pod_subnet=pod_subnet)

    def up(self, node: NodePlan) -> None:
        self.node_plan = node
        cmd = [str(self.binary), "plain", "--netns-pid", str(self.node.pid), "--name", "mesh0", "--mtu", str(node.mtu),
               "--addr", f"{node.mesh_ip}/{node.mesh_prefix}", "--status", str(self.status),
               "--listen-address", node.host_address, "--listen-port", str(node.listen_port),
               "--secret-file", str(self.node.secret_file), "--path-mtu", str(self.path_mtu)]
        for route in node.routes:
            cmd += ["--route", route]
        for p in node.peers:
            cmd += ["--peer", f"{p.name}={p.endpoint}={','.join(p.allowed_ips)}"]
        self.proc = start_helper(cmd, self.log, self.status, "the mesh helper",
                                 f"is UDP port {node.listen_port} free on this host? (mesh_port)")

    def check(self) -> Restart | None:
        """Start ksi-wg plain again if it died (its TUN went with it); say why it died."""
        if self.node_plan is None:
            return None
        node = self.node_plan
        restart = restarted(self.proc, self.log, lambda: self.up(node), self.last_restart, "mesh: ksi-wg plain")
        self.last_restart = restart or self.last_restart
        return restart

    def show(self) -> dict:
        return json.loads(output([str(self.binary), "plain-show", "--status", str(self.status)], timeout=10))

    def peers(self) -> dict[str, dict[str, int]]:
        return {p["name"]: {"latest_handshake": p["last_rx"], "rx_bytes": p["rx_bytes"], "tx_bytes": p["tx_bytes"]}
                for p in self.show()["peers"]}

    def wait(self, node: NodePlan, timeout: float) -> None:
        """Every peer answers a ping over the mesh (there is no handshake to wait for)."""
        probe.wait_reachable(self.node, node, timeout, "the plain mesh",
                             f"check that UDP port {node.listen_port} (mesh_port) is open between the hosts (firewall)")

    def down(self) -> None:
        stop(self.proc, grace=10)
