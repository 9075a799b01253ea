from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import netplugins
from ksi_multi import federation, imageload, node, ports, proxy, scratch
from ksi_multi.errors import KsiError
from ksi_multi.image.index import helper_paths
from ksi_multi.imagecache import ImageCache
from ksi_multi.jobhost import job_host
from ksi_multi.phases.results import NodeUp
from ksi_multi.ranges import Ranges

if TYPE_CHECKING:
    from ksi_multi.agent import AgentContext

log = logging.getLogger("ksi_multi.agent")


class NodePhase:
    """Start this host's Kind-style node container under rootless podman and wait until it has booted."""

    name = "node"

    def execute(self, ctx: AgentContext) -> NodeUp:
        cfg, slurm = ctx.config, ctx.slurm
        base = scratch.base_dir(cfg.scratch)
        scratch.check_local(base)
        # checked whatever the job runs, imported only into a node that runs Kubernetes
        archives = self._user_images(cfg.images)
        if cfg.federation == "liqo":
            archives.append(federation.LiqoTools.find(cfg.image_dir.expanduser()).archive)
        if not ctx.kubernetes:
            archives = []
        here = job_host(cfg, slurm.job_id)
        scratch.ensure_private(base, here.scratch)
        scratch.ensure_private(here.podman.runtime.parent, here.podman.runtime)
        ctx.on_teardown("remove the job's scratch directory", lambda: scratch.remove(here.scratch))
        home = here.podman
        ctx.on_teardown("remove the job's podman store", home.remove)
        cache = None
        if cfg.image_cache and not cfg.image:
            cache = ImageCache.of(cfg.image_cache_dir, cfg.image_cache, base)
            ctx.on_teardown("release the node image in this host's cache", cache.release)
        image = node.ensure_image(home, cfg.image, cfg.image_dir.expanduser(), cache)
        # The default mesh binds its UDP port on the host itself; the others need it forwarded into the node.
        forward_mesh = slurm.node_count > 1 and netplugins.forwarded(cfg.mesh)
        # Users reach rank 0's API server; federated, every node's (each runs its own cluster).
        own_api = slurm.is_coordinator or cfg.federation == "liqo"
        api_port = ports.chosen(cfg.api_server_port, "tcp", ctx.address) if own_api else 0
        mesh_port = ports.chosen(cfg.mesh_port, "udp", ctx.address) if forward_mesh else 0
        join = None
        if here.cgroup:
            here.cgroup.create()
            ctx.on_teardown("remove the job cgroup", here.cgroup.remove)
            join = here.cgroup.join
        seed = containerd = None
        if cache is not None and ctx.kubernetes:
            seed = cache.containerd_seed(home, lambda into: node.make_seed(
                home, f"ksi-seed-{slurm.job_id}-{slurm.hostname}", image, into, cfg.node_timeout, join))
            containerd = home.own_dir("node-containerd")
            node.containerd_from_seed(seed, containerd)
        spec = node.NodeSpec(job_id=slurm.job_id, hostname=slurm.hostname, image=image, host_address=ctx.address,
                             net_backend=cfg.net_backend, api_port=api_port or None,
                             mesh_port=mesh_port or None, subnet=cfg.node_subnet,
                             masked=() if ctx.kubernetes else node.KUBERNETES_UNITS,
                             containerd=containerd, seed=seed)
        ctx.on_teardown("remove the node container", lambda: node.remove(home, spec))
        started = time.monotonic()
        home.podman(*spec.run_args(), preexec_fn=join, timeout=120,
                    fix="see the message above; `ksi-multi doctor` checks podman, pasta and cgroups")
        self._check_forwards(spec)
        marks = node.wait_booted(home, spec.name, cfg.node_timeout, ctx.kubernetes)
        log.info("node: %s up (%s) %s", spec.name, cfg.net_backend,
                 ", ".join(f"{k} {v + 0:.1f}s" for k, v in marks.items()))
        if archives:
            self._import(home, spec, archives)
        running = self._proxy(ctx, home, spec)
        log.debug("node: container started %.1f s after podman run", time.monotonic() - started)
        return NodeUp(home, spec, running)

    @staticmethod
    def _user_images(entries) -> list[Path]:
        """The `images` key, checked before anything starts: every entry an image archive this host can read."""
        archives = imageload.expand(list(entries))
        for path in archives:
            try:
                imageload.inspect(path)
            except KsiError as exc:
                raise KsiError(f"images: {exc.cause}", f"fix or remove it in the `images` key; {exc.fix}") from None
        if entries and not archives:
            raise KsiError(f"images: no image archives (*.tar, *.tar.gz) in {', '.join(map(str, entries))}",
                           "put archives there (podman save -o NAME.tar IMAGE) or remove the `images` key")
        return archives

    @staticmethod
    def _import(home, spec: node.NodeSpec, archives: list[Path]) -> None:
        started = time.monotonic()
        names = imageload.import_archives(home, spec.name, archives)
        log.info("node: imported %d image(s) in %.1f s: %s", len(names), time.monotonic() - started,
                 " ".join(names))

    @staticmethod
    def _proxy(ctx, home, spec: node.NodeSpec) -> proxy.NodeProxy:
        """ksi-proxy: NodePorts on this host's address, and (egress: proxy) TCP leaving the cluster."""
        ranges = Ranges.of(ctx.config)
        inside = proxy.inside_ranges(ranges.pods, ranges.services, ranges.mesh, ranges.node)
        running = proxy.NodeProxy(
            binary=helper_paths(ctx.config.image_dir.expanduser()).get("ksi-proxy", Path("ksi-proxy")),
            node_pid=node.init_pid(home, spec.name), workdir=home.base.parent, runtime=home.runtime,
            bind=ctx.address, node_address=ranges.node_address,
            node_exec=lambda *cmd, **kw: home.podman("exec", "-i", spec.name, *cmd, **kw),
            egress_inside=inside if ctx.config.egress == "proxy" else None)
        ctx.on_teardown("stop the node proxy", running.stop)
        running.start()
        log.info("node: ksi-proxy (pid %d): NodePorts on %s%s", running.pid, ctx.address,
                 ", TCP leaving the cluster" if running.egress else "")
        return running

    @staticmethod
    def _check_forwards(spec: node.NodeSpec) -> None:
        wanted = [("tcp", spec.api_port, "api_server_port"), ("udp", spec.mesh_port, "mesh_port")]
        deadline = time.monotonic() + 10
        for proto, port, key in wanted:
            if not port:
                continue
            while not node.listening(spec.host_address, port, proto):
                if time.monotonic() > deadline:
                    raise KsiError(f"{spec.net_backend} did not forward {proto} port {port} on {spec.host_address}",
                                   f"the port is probably taken: set {key} to a free port, or to 0 (one chosen "
                                   "per job)")
                time.sleep(0.1)
