from __future__ import annotations

import logging
import time

import psutil

from ksi_multi.errors import KsiError
from ksi_multi.node import NODE_ADDRESS, image_index
from ksi_multi.phases.rendezvous import coordinator_client
from ksi_multi.rendezvous import RendezvousError
from netplugins.wireguard import plan as mesh_plan
from netplugins.wireguard.apply import Mesh

log = logging.getLogger("ksi_multi.agent")


def path_mtu(address: str) -> int:
    """MTU of the host interface that carries `address` (the mesh's packets leave through it)."""
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == address for a in addrs) and name in stats:
            return stats[name].mtu
    return 1500


class MeshPhase:
    """Join the nodes with a WireGuard full mesh; each node's Kubernetes address becomes its mesh address.

    One node needs no mesh: its Kubernetes address is its own in-namespace address.
    """

    name = "mesh"

    def execute(self, ctx) -> None:
        if ctx.slurm.node_count == 1:
            ctx.node_ip = NODE_ADDRESS
            log.info("mesh: single node, node address %s", ctx.node_ip)
            return
        image_dir = ctx.config.image_dir.expanduser()
        mesh = Mesh(image_dir / (image_index(image_dir) or {}).get("ksi_wg", "ksi-wg"), ctx.podman.base.parent,
                    ctx.podman.runtime)
        public_key = mesh.keygen()
        members = self._exchange_keys(ctx, public_key)
        plan = mesh_plan.plan([mesh_plan.Member(m["rank"], m["hostname"], m["address"], m["info"]["wg_public_key"],
                                                m["info"]["mesh_port"]) for m in members],
                              path_mtu=path_mtu(ctx.address))
        node = plan[ctx.slurm.rank]
        pid = int(ctx.podman.podman("inspect", "--format", "{{.State.Pid}}", ctx.node.name).stdout.strip())
        ctx.on_teardown("stop the mesh", mesh.down)
        mesh.up(node, pid)
        mesh.wait_handshakes(node, ctx.config.rendezvous_timeout)
        ctx.node_ip = node.mesh_ip
        ctx.mesh = mesh
        if ctx.status:
            ctx.status.update(nodes=[{**n, "mesh_ip": plan[n["rank"]].mesh_ip} for n in ctx.status.data["nodes"]])
        log.info("mesh: %s on wg0 (MTU %d), handshakes with %s", node.mesh_ip, node.mtu,
                 ", ".join(p.name for p in node.peers))

    @staticmethod
    def _exchange_keys(ctx, public_key: str) -> list[dict]:
        """Second round through the rendezvous: every node re-registers with its public key and mesh port."""
        client = coordinator_client(ctx, ctx.job.read_json(ctx.job.endpoint_file))
        ctx.info.update({"wg_public_key": public_key, "mesh_port": ctx.config.mesh_port})
        me = {"rank": ctx.slurm.rank, "hostname": ctx.slurm.hostname, "address": ctx.address, "info": ctx.info}
        deadline = time.monotonic() + ctx.config.rendezvous_timeout
        try:
            client.register(me, deadline)
            while True:
                members = client.wait_members(ctx.slurm.rank, deadline)
                waiting = [m["hostname"] for m in members if "wg_public_key" not in m["info"]]
                if not waiting:
                    ctx.members = members
                    return members
                if time.monotonic() > deadline:
                    raise KsiError(f"mesh: no public key from {', '.join(waiting)} after "
                                   f"{ctx.config.rendezvous_timeout:g} s", "see those hosts' agent logs")
                time.sleep(0.25)
        except RendezvousError as exc:
            raise KsiError(f"mesh: key exchange with rank 0 failed: {exc.cause}") from None
