from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import psutil

import netplugins
from ksi_multi import ports
from ksi_multi.doctor import path_mtu
from ksi_multi.errors import KsiError
from ksi_multi.image.index import helper_paths
from ksi_multi.node import init_pid
from ksi_multi.phases.results import MeshUp, NodeUp
from ksi_multi.ranges import Ranges
from ksi_multi.rendezvous import RendezvousError
from netplugins.topology import Member

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")


def node_access(ctx, up: NodeUp) -> netplugins.NodeAccess:
    home, name = up.home, up.spec.name
    return netplugins.NodeAccess(exec=lambda *cmd, **kw: home.podman("exec", "-i", name, *cmd, **kw),
                                 pid=init_pid(home, name),
                                 workdir=home.base.parent, runtime=home.runtime,
                                 tools=helper_paths(ctx.config.image_dir.expanduser()),
                                 secret_file=ctx.job.secret_file)


class MeshPhase:
    """Join the nodes with the configured mesh plugin; each node's Kubernetes address becomes its mesh address.

    One node needs no mesh: its Kubernetes address is its own in-namespace address.
    """

    name = "mesh"

    def execute(self, ctx: AgentContext) -> MeshUp:
        if ctx.slurm.node_count == 1:
            node_ip = Ranges.of(ctx.config).node_address
            log.info("mesh: single node, node address %s", node_ip)
            return MeshUp(node_ip)
        cfg = ctx.config
        up = ctx.results.node_up
        mesh = netplugins.load(cfg.mesh, node_access(ctx, up))
        marks = [time.monotonic()]
        members = self._exchange(ctx, mesh.prepare(), up.spec.mesh_port or 0)
        marks.append(time.monotonic())
        try:
            plan = mesh.plan(members, path_mtu=path_mtu(ctx.address), mtu=cfg.mesh_mtu or None,
                             mesh_cidr=cfg.mesh_subnet, pod_subnet=cfg.pod_subnet)
        except ValueError as exc:
            raise KsiError(f"mesh: {exc}", "see docs/usage.md (mesh) for the limits of the plan") from None
        node = plan[ctx.slurm.rank]
        marks.append(time.monotonic())
        ctx.on_teardown("stop the mesh", mesh.down)
        mesh.up(node)
        marks.append(time.monotonic())
        mesh.wait(node, cfg.rendezvous_timeout)
        marks.append(time.monotonic())
        steps = {name: marks[i + 1] - marks[i] for i, name in enumerate(("exchange", "plan", "up", "reach"))}
        if ctx.status:
            ctx.status.set_node_fields({plan[r].name: {"mesh_ip": plan[r].mesh_ip, "mesh_port": plan[r].listen_port}
                                        for r in plan})
            ctx.status.update(mesh_steps={k: round(v, 3) for k, v in steps.items()},
                              agent_rss_mb=round(psutil.Process().memory_info().rss / 2**20, 1))
        reached = mesh.peers()
        log.info("mesh: %s %s (MTU %d), reaches %d peer(s) (%s): %s", mesh.name, node.mesh_ip, node.mtu,
                 len(node.peers), ", ".join(f"{k} {v:.2f}s" for k, v in steps.items()),
                 " ".join(p.name + ("" if reached.get(p.name, {}).get("latest_handshake", 1) else "(no handshake)")
                          for p in node.peers))
        return MeshUp(node.mesh_ip, node.mtu, mesh)

    @staticmethod
    def _exchange(ctx, published: dict, forwarded_port: int) -> list[Member]:
        """Through the coordination channel: every node puts what its mesh needs known (key, port) and waits
        until every node has."""
        # A forwarded mesh took its port with the node; one on a host socket takes it now, just before use.
        port = forwarded_port or ports.chosen(ctx.config.mesh_port, "udp", ctx.address)
        deadline = time.monotonic() + ctx.config.rendezvous_timeout
        try:
            ctx.channel.put("mesh", {**published, "mesh_port": port}, deadline)
            mesh = ctx.channel.wait_all("mesh", deadline)
        except RendezvousError as exc:
            raise KsiError(f"mesh: exchange through rank 0 failed: {exc.cause}",
                           "see the agent logs of the hosts named") from None
        return [Member(m.rank, m.hostname, m.address, mesh[m.rank].get("mesh_key", ""), mesh[m.rank]["mesh_port"])
                for m in ctx.results.joined.members]
