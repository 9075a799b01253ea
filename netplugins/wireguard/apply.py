"""Applying a node's mesh plan: ksi-wg on this host, its TUN inside the node container's namespace."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.run import output
from netplugins.wireguard.plan import NodePlan, peers_config

log = logging.getLogger("ksi_multi.agent")


class Mesh:
    """One node's WireGuard: keys in `workdir` (0600, never sent anywhere), the UAPI socket in `runtime`."""

    def __init__(self, binary: Path, workdir: Path, runtime: Path) -> None:
        self.binary = binary
        self.key = workdir / "wg.key"
        self.conf = workdir / "wg-peers.conf"
        self.log = workdir / "ksi-wg.log"
        self.uapi = runtime / "wg.sock"
        self.proc: subprocess.Popen | None = None

    def keygen(self) -> str:
        """Create this node's private key; return the public key (base64)."""
        if not self.binary.exists():
            raise KsiError(f"the mesh helper {self.binary} does not exist",
                           "build the images again (ksi-multi image build) so that ksi-wg is next to them")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(output([str(self.binary), "genkey"]) + "\n")
        return output([str(self.binary), "pubkey"], input=self.key.read_text())

    def up(self, node: NodePlan, netns_pid: int) -> None:
        self.conf.write_text(peers_config(node))
        cmd = [str(self.binary), "up", "--netns-pid", str(netns_pid), "--name", "wg0", "--mtu", str(node.mtu),
               "--addr", f"{node.mesh_ip}/{node.mesh_prefix}", "--uapi", str(self.uapi),
               "--listen-port", str(node.listen_port), "--private-key-file", str(self.key), "--config", str(self.conf)]
        for route in node.routes:
            cmd += ["--route", route]
        log.debug("mesh: %s", " ".join(cmd))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.uapi.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise KsiError(f"the mesh helper did not start: {self.log.read_text()[-400:].strip()}",
                               f"is UDP port {node.listen_port} free on this host? (mesh_port)")
            time.sleep(0.1)

    def show(self) -> dict:
        return json.loads(output([str(self.binary), "show", "--uapi", str(self.uapi)], timeout=10))

    def wait_handshakes(self, node: NodePlan, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            peers = {p["public_key"]: p for p in self.show()["peers"]}
            missing = [p for p in node.peers if not peers.get(p.public_key, {}).get("latest_handshake")]
            if not missing:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{p.name} (UDP {p.endpoint})" for p in missing)
                raise KsiError(f"{node.name}: no WireGuard handshake after {timeout:g} s with {names}",
                               "check that UDP mesh_port is open between the hosts (firewall)")
            time.sleep(0.2)

    def down(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.key.unlink(missing_ok=True)
