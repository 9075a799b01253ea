"""Applying a node's WireGuard plan with ksi-wg, whose TUN lives inside the node container's namespace.

Default: ksi-wg runs in the host's network namespace, so its UDP socket is an ordinary host socket on
mesh_port (GSO/GRO kept, nothing through pasta). Forwarded: all of ksi-wg runs inside the node's
namespaces and the network helper forwards mesh_port to it (slower; for sites where that is wanted).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.run import Restart, output, restarted, start_helper, stop
from netplugins import NodeAccess
from netplugins.topology import Member, NodePlan
from netplugins.wireguard import plan as wg_plan

# The helpers' C constructor joins this pid's user and network namespaces before the Go runtime starts.
NSENTER_ENV = "_KSI_NSENTER_PID"


class WireGuardMesh:
    """One node's WireGuard: keys in the job's workdir (0600, never sent anywhere), the UAPI socket in runtime."""

    def __init__(self, node: NodeAccess, forwarded: bool = False) -> None:
        self.node = node
        self.forwarded = forwarded  # all of ksi-wg inside the node's namespaces
        self.name = "wireguard-forwarded" if forwarded else "wireguard"
        self.binary = node.tools.get("ksi-wg", Path("ksi-wg"))
        self.key = node.workdir / "wg.key"
        self.conf = node.workdir / "wg-peers.conf"
        self.log = node.workdir / "ksi-wg.log"
        self.uapi = node.runtime / "wg.sock"
        self.proc: subprocess.Popen | None = None
        self.names: dict[str, str] = {}
        self.node_plan: NodePlan | None = None
        self.last_restart: Restart | None = None

    def prepare(self) -> dict:
        """Create this node's private key; publish the public key."""
        if not self.binary.exists():
            raise KsiError(f"the mesh helper {self.binary} does not exist",
                           "build the images again (ksi-multi image build) so that ksi-wg is next to them")
        self.key.unlink(missing_ok=True)  # a second run of the job writes a fresh key, never through a link
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(output([str(self.binary), "genkey"]) + "\n")
        return {"mesh_key": output([str(self.binary), "pubkey"], input=self.key.read_text())}

    def plan(self, members: Sequence[Member], path_mtu: int, mtu: int | None, mesh_cidr: str,
             pod_subnet: str) -> dict[int, NodePlan]:
        return wg_plan.plan(members, path_mtu, mtu, mesh_cidr=mesh_cidr, pod_subnet=pod_subnet)

    def up(self, node: NodePlan) -> None:
        self.node_plan = node
        self.names = {p.public_key: p.name for p in node.peers}
        self.conf.write_text(wg_plan.peers_config(node))
        cmd = [str(self.binary), "up", "--netns-pid", str(self.node.pid), "--name", "wg0", "--mtu", str(node.mtu),
               "--addr", f"{node.mesh_ip}/{node.mesh_prefix}", "--uapi", str(self.uapi),
               "--listen-port", str(node.listen_port), "--private-key-file", str(self.key), "--config", str(self.conf)]
        for route in node.routes:
            cmd += ["--route", route]
        if not self.forwarded:  # a host socket: on the cluster address only (forwarded, the node's netns is ours)
            cmd += ["--listen-address", node.host_address]
        env = {**os.environ, NSENTER_ENV: str(self.node.pid)} if self.forwarded else None
        self.proc = start_helper(cmd, self.log, self.uapi, "the mesh helper",
                                 f"is UDP port {node.listen_port} free on this host? (mesh_port)", env=env)

    def check(self) -> Restart | None:
        """Start ksi-wg again if it died (its TUN went with it; the peers handshake again); say why it died."""
        if self.node_plan is None:
            return None
        node = self.node_plan
        restart = restarted(self.proc, self.log, lambda: self.up(node), self.last_restart, "mesh: ksi-wg")
        self.last_restart = restart or self.last_restart
        return restart

    def show(self) -> dict:
        return json.loads(output([str(self.binary), "show", "--uapi", str(self.uapi)], timeout=10))

    def peers(self) -> dict[str, dict[str, int]]:
        return {self.names.get(p["public_key"], p["public_key"]): {
            "latest_handshake": p["latest_handshake"], "rx_bytes": p["rx_bytes"], "tx_bytes": p["tx_bytes"]}
            for p in self.show()["peers"]}

    def wait(self, node: NodePlan, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            peers = {p["public_key"]: p for p in self.show()["peers"]}
            missing = [p for p in node.peers if not peers.get(p.public_key, {}).get("latest_handshake")]
            if not missing:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{p.name} (UDP {p.endpoint})" for p in missing)
                raise KsiError(f"{node.name}: no WireGuard handshake after {timeout:g} s with {names}",
                               f"check that UDP port {node.listen_port} (mesh_port) is open between the hosts "
                               "(firewall)")
            time.sleep(0.2)

    def down(self) -> None:
        stop(self.proc, grace=10)
        self.key.unlink(missing_ok=True)
