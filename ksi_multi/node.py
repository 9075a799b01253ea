"""The Kind-style node container under rootless podman: its spec (pure) and its lifecycle (thin)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.image import index as images
from ksi_multi.imagecache import ImageCache
from ksi_multi.podman import PodmanHome
from ksi_multi.ranges import Ranges
from ksi_multi.run import CommandError

log = logging.getLogger("ksi_multi.agent")

API_PORT_IN_NODE = 6443
# What a node that runs no Kubernetes (a job --until mesh) leaves out: containerd, the kubelet, the image import.
KUBERNETES_UNITS = ("containerd.service", "kubelet.service", "ksi-images.service")
# Where a node sees this host's containerd seed (imagecache): the preloaded images, unpacked once per host.
SEED_IN_NODE = "/ksi/containerd-seed"
OVERLAY_SNAPSHOTS = Path("io.containerd.snapshotter.v1.overlayfs") / "snapshots"


def container_name(job_id: str, hostname: str) -> str:
    return f"ksi-{job_id}-{hostname}"


@dataclass(frozen=True)
class NodeSpec:
    job_id: str
    hostname: str
    image: str
    host_address: str
    net_backend: str = "pasta"
    api_port: int | None = None  # host port forwarded to the API server (rank 0 only)
    mesh_port: int | None = None
    subnet: str = Ranges().node  # node_subnet
    masked: tuple[str, ...] = ()  # systemd units the node does not start
    containerd: Path | None = None  # a host directory as /var/lib/containerd (else a volume of the job's store)
    seed: Path | None = None  # this host's containerd seed, read-only at SEED_IN_NODE

    @property
    def name(self) -> str:
        return container_name(self.job_id, self.hostname)

    @property
    def volume(self) -> str:
        return f"{self.name}-containerd"

    def network(self) -> str:
        """The node's address in its own namespace is the same for pasta and slirp4netns (.100 of
        node_subnet). pasta would otherwise copy the host's address in, and then connections from this very
        host to a forwarded port arrive with the node's own address as source and are never answered."""
        if self.net_backend == "slirp4netns":
            return f"slirp4netns:port_handler=slirp4netns,enable_ipv6=false,cidr={self.subnet}"
        ranges = Ranges(node=self.subnet)
        return f"pasta:-a,{ranges.node_address},-n,24,-g,{ranges.node_gateway}"

    def publish(self) -> list[str]:
        """Only what must be reachable, bound to this host's cluster address."""
        out = []
        if self.api_port:
            out += ["-p", f"{self.host_address}:{self.api_port}:{API_PORT_IN_NODE}/tcp"]
        if self.mesh_port:
            out += ["-p", f"{self.host_address}:{self.mesh_port}:{self.mesh_port}/udp"]
        return out

    def run_args(self) -> list[str]:
        seed = ["--volume", f"{self.seed}:{SEED_IN_NODE}:ro"] if self.seed else []
        return ["run", "--detach", "--name", self.name, "--hostname", self.hostname,
                "--label", f"ksi-multi.job={self.job_id}", *_BOOT_ARGS,
                "--volume", f"{self.containerd or self.volume}:/var/lib/containerd", *seed,
                "--network", self.network(), *self.publish(), self.image, "/sbin/init",
                # systemd in a container reads its arguments as a kernel command line
                *(f"systemd.mask={unit}" for unit in self.masked)]


_BOOT_ARGS = ("--privileged", "--cgroupns=private", "--systemd=false", "--env", "container=podman",
              "--tmpfs", "/tmp", "--tmpfs", "/run")


def seed_args(name: str, image: str, into: Path) -> list[str]:
    """A node without network or kubelet that only imports the preloaded images, into `into`."""
    return ["run", "--detach", "--name", name, *_BOOT_ARGS, "--volume", f"{into}:/var/lib/containerd",
            "--network", "none", image, "/sbin/init", "systemd.mask=kubelet.service"]


def make_seed(home: PodmanHome, name: str, image: str, into: Path, timeout: float, preexec_fn=None) -> None:
    """Fill `into` with a /var/lib/containerd holding the node image's preloaded images, unpacked."""
    into.mkdir(mode=0o700)
    try:
        home.podman(*seed_args(name, image, into), preexec_fn=preexec_fn, timeout=120,
                    fix="see the message above; `ksi-multi doctor` checks podman, pasta and cgroups")
        wait_booted(home, name, timeout)
        home.podman("exec", name, "systemctl", "stop", "containerd.service", timeout=120)
    finally:
        remove_container(home, name)


def containerd_from_seed(seed: Path, into: Path) -> None:
    """A node's own /var/lib/containerd made from this host's seed: containerd's databases and small files
    copied, each unpacked layer a link into the seed the node mounts read-only (nothing large is copied; the
    layers are only ever overlay lower directories)."""
    snapshots = seed / OVERLAY_SNAPSHOTS
    shutil.copytree(seed, into, symlinks=True,
                    ignore=lambda where, names: ["snapshots"] if Path(where) == snapshots.parent else [])
    (into / OVERLAY_SNAPSHOTS).mkdir(mode=0o700)
    for layer in snapshots.iterdir():
        (into / OVERLAY_SNAPSHOTS / layer.name).symlink_to(f"{SEED_IN_NODE}/{OVERLAY_SNAPSHOTS}/{layer.name}")


def ensure_image(home: PodmanHome, image: str, image_dir: Path, cache: ImageCache | None = None) -> str:
    """Make `image` (or the node image built into image_dir) available to the job's store; return its name.
    The built image comes from this host's image cache when there is one (loaded there on first use)."""
    index = image_dir / images.INDEX
    built = images.read(image_dir)
    wanted = image or (built["node"]["tag"] if built else "")
    if not wanted:
        raise KsiError(f"no node image: {index} does not exist and no image is configured",
                       "build one (ksi-multi image build) or set image / image_dir")
    ours = built is not None and built["node"]["tag"] == wanted
    archive = image_dir / built["node"]["archive"] if ours else None
    if ours and cache is not None:
        home.read_images_from(cache.provide(home, archive, wanted, built["node"].get("id", "")))
        return wanted
    if home.podman("image", "exists", wanted, check=False).returncode == 0:
        return wanted
    if ours:
        started = time.monotonic()
        home.podman("load", "--quiet", "--input", str(archive), timeout=900,
                    fix=f"check {archive} (rebuild it with ksi-multi image build)")
        log.info("node: loaded %s from %s in %.1f s", wanted, archive, time.monotonic() - started)
        return wanted
    try:
        home.podman("pull", "--quiet", wanted, timeout=900)
    except CommandError:
        raise KsiError(f"node image {wanted} is not in {image_dir} and cannot be pulled",
                       f"build it (ksi-multi image build --output {image_dir}) or load it (podman load)") from None
    return wanted


def init_pid(home: PodmanHome, name: str) -> int:
    """The node container's init on this host: its namespaces are the node's."""
    return int(home.podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())


def state(home: PodmanHome, name: str) -> str:
    """The container's status ("running", "exited", ...), or "" when it does not exist."""
    return home.podman("container", "inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()


# Each check waits inside the node (a cheap shell loop), up to this long per `podman exec`: a host booting many
# nodes at once is not also flooded with execs, and a node that is ready is seen within 0.2 s.
CHECK_WINDOW = 20
BOOT_CHECKS = (
    ("systemd", 'case "$(systemctl is-system-running 2>/dev/null)" in running|degraded) true;; *) false;; esac'),
    ("containerd", "ctr version >/dev/null 2>&1"),
    # our images import the preloaded images at boot (unless a seed holds them); other kind-compatible images
    # have them already
    ("images", "! systemctl cat ksi-images.service >/dev/null 2>&1 || [ -e /var/lib/containerd/.ksi-images-imported ]"),
)


def _waiting_inside(test: str, seconds: int) -> str:
    return (f"end=$(($(date +%s) + {seconds})); until {test}; do "
            f'[ "$(date +%s)" -ge "$end" ] && exit 1; sleep 0.2; done')


def wait_booted(home: PodmanHome, name: str, timeout: float, kubernetes: bool = True) -> dict[str, float]:
    """Wait for systemd, containerd and the preloaded images (only systemd for a node without Kubernetes);
    return when each was ready (seconds)."""
    started = time.monotonic()
    marks: dict[str, float] = {}
    for what, test in BOOT_CHECKS if kubernetes else BOOT_CHECKS[:1]:
        while True:
            now = state(home, name)
            if now != "running":
                raise KsiError(f"node container {name} is {now or 'gone'} while waiting for {what}",
                               f"see its log: podman logs {name} (in the job's scratch store)")
            try:
                ready = home.podman("exec", name, "sh", "-c", _waiting_inside(test, CHECK_WINDOW), check=False,
                                    timeout=CHECK_WINDOW + 60).returncode == 0
            except CommandError:  # the host is too busy to even start the check: ask again
                ready = False
            if ready:
                marks[what] = time.monotonic() - started
                break
            if time.monotonic() - started > timeout:
                _not_booted(home, name, what, timeout)
    if marks.get("systemd") is not None:
        degraded = _ask(home, name, "systemctl", "--failed", "--no-legend")
        if degraded:
            log.warning("node: failed units: %s", " ".join(line.split()[1] for line in degraded.splitlines()))
    return marks


def _ask(home: PodmanHome, name: str, *cmd: str) -> str:
    try:
        return home.podman("exec", name, *cmd, check=False, timeout=60).stdout.strip()
    except CommandError:
        return ""


def _not_booted(home: PodmanHome, name: str, what: str, timeout: float) -> None:
    last = _ask(home, name, "systemctl", "is-system-running")
    failed = _ask(home, name, "systemctl", "--failed", "--no-legend")
    raise KsiError(f"node {name}: {what} not ready after {timeout:g} s (systemd: {last or 'no answer'})"
                   + (f"; failed units: {' '.join(line.split()[1] for line in failed.splitlines())}"
                      if failed else ""),
                   "raise node_timeout if the host is slow; else see journalctl inside the node")


def remove(home: PodmanHome, spec: NodeSpec) -> None:
    """Kill and remove the node container. Nothing in the node outlives the job: there is nothing to stop in
    order, and its volume goes with the store (PodmanHome.remove), one deletion for all."""
    remove_container(home, spec.name)


def remove_container(home: PodmanHome, name: str) -> None:
    home.podman("rm", "--force", "--time", "0", "--ignore", name, check=False, timeout=60)


def listening(address: str, port: int, proto: str) -> bool:
    """Whether something on this host listens on address:port (pasta binds silently or not at all)."""
    import psutil

    kind = "tcp4" if proto == "tcp" else "udp4"
    for conn in psutil.net_connections(kind=kind):
        if conn.laddr and conn.laddr.port == port and conn.laddr.ip in (address, "0.0.0.0"):
            if proto == "udp" or conn.status == psutil.CONN_LISTEN:
                return True
    return False
