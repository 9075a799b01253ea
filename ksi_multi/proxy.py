"""ksi-proxy on one host: the node's TCP past the network helper (pasta's outbound TCP stalls), as a process
of the user in the host's network namespace.

egress: TCP from pods and from the node to anything outside the cluster. iptables in the node REDIRECTs it
to a listener ksi-proxy made inside the node's namespace; ksi-proxy dials the destination from the host.
UDP (DNS) and ICMP stay on the network helper.
ingress: NodePort Services on the host's address: a listener there per port, each connection matched by
one ksi-proxy makes inside the node to the same port.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ksi_multi import run
from ksi_multi.errors import KsiError
from ksi_multi.run import Restart

log = logging.getLogger("ksi_multi.agent")

EGRESS_PORT = 15001  # the egress listener's port inside the node's network namespace
CHAIN = "KSI-EGRESS"
LOOPBACK = "127.0.0.0/8"


def egress_rules(port: int, inside: Sequence[str]) -> str:
    """iptables-restore text (with --noflush) for the node: TCP to anything but `inside` and the node's own
    addresses goes to the proxy, from pods (PREROUTING) and from the node itself (OUTPUT)."""
    lines = ["*nat", f":{CHAIN} - [0:0]"]
    lines += [f"-A {CHAIN} -d {cidr} -j RETURN" for cidr in inside]
    lines += [f"-A {CHAIN} -m addrtype --dst-type LOCAL -j RETURN",
              f"-A {CHAIN} -p tcp -j REDIRECT --to-ports {port}"]
    lines += [f"-I {hook} 1 -p tcp -m comment --comment \"ksi-multi: TCP leaving the cluster\" -j {CHAIN}"
              for hook in ("PREROUTING", "OUTPUT")]
    return "\n".join([*lines, "COMMIT"]) + "\n"


def inside_ranges(pods: str, services: str, mesh: str, node_network: str) -> tuple[str, ...]:
    """What never leaves the cluster: pods, Services, the mesh, the node's own network, loopback."""
    return (pods, services, mesh, node_network, LOOPBACK)


class NodeProxy:
    """One host's ksi-proxy: started after the node boots, watched by the wait phase, stopped with the node.

    `egress_inside`: the ranges that stay inside the cluster, or None for `egress: helper` (ingress only).
    """

    def __init__(self, binary: Path, node_pid: int, workdir: Path, runtime: Path, bind: str, node_address: str,
                 node_exec: Callable[..., subprocess.CompletedProcess], egress_inside: Sequence[str] | None) -> None:
        self.binary = binary
        self.node_pid = node_pid
        self.node_exec = node_exec
        self.bind = bind
        self.node_address = node_address
        self.egress_inside = tuple(egress_inside) if egress_inside is not None else None
        self.ready = workdir / "proxy.ready"
        self.log = workdir / "ksi-proxy.log"
        self.control = runtime / "proxy.sock"
        self.proc: subprocess.Popen | None = None
        self.last_restart: Restart | None = None
        self.forwarded: dict[int, str] = {}  # NodePort -> "ok" or why its host listener could not be made
        self.lock = threading.RLock()  # the wait phase restarts, the NodePort follower forwards

    @property
    def egress(self) -> bool:
        return self.egress_inside is not None

    def start(self) -> None:
        """Run the proxy and wait until it listens; with egress, send the node's outbound TCP to it."""
        self._spawn()
        if self.egress:
            self.node_exec("iptables-restore", "-w", "5", "--noflush", input=egress_rules(EGRESS_PORT, self.egress_inside),
                           timeout=30)

    def _spawn(self) -> None:
        if not self.binary.exists():
            raise KsiError(f"the node proxy {self.binary} does not exist",
                           "build the images again (ksi-multi image build) so that ksi-proxy is next to them")
        cmd = [str(self.binary), "run", "--netns-pid", str(self.node_pid),
               "--egress-port", str(EGRESS_PORT if self.egress else 0), "--control", str(self.control),
               "--bind", self.bind, "--node-address", self.node_address, "--ready-file", str(self.ready)]
        self.proc = run.start_helper(cmd, self.log, self.ready, "the node proxy",
                                     "see ksi-proxy.log in the job's scratch directory; egress: helper avoids it "
                                     "for pods' outbound TCP")

    def check(self) -> Restart | None:
        """Start the proxy again if it died (with the NodePorts it forwarded); say why it died. Raises when it
        cannot be started again."""
        with self.lock:
            restart = run.restarted(self.proc, self.log, self._spawn, self.last_restart, "proxy: ksi-proxy")
            if restart is None:
                return None
            self.last_restart = restart
            if self.forwarded:
                self.forward(self.forwarded)
            return self.last_restart

    def forward(self, ports: Iterable[int]) -> dict[int, str]:
        """Forward exactly these NodePorts from the host's address into the node; per port "ok" or why not."""
        with self.lock:
            answer = self._command("set " + " ".join(str(p) for p in sorted(set(ports))))
            if "error" in answer:
                raise KsiError(f"the node proxy refused the NodePorts: {answer['error']}")
            self.forwarded = {int(p): why for p, why in answer.items()}
            return dict(self.forwarded)

    def _command(self, line: str) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(self.control))
            sock.sendall(line.encode() + b"\n")
            return json.loads(sock.makefile().readline())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        run.stop(self.proc)
        self.ready.unlink(missing_ok=True)
