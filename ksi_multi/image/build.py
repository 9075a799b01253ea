"""`ksi-multi image build`: the node image and the toolbox image, offline, with progress and timings.

node image  = Debian trixie (systemd, containerd, runc, CNI plugins, iptables, kubectl)
            + kubeadm/kubelet built from Go modules + every control-plane image preloaded (/ksi/images)
toolbox     = Debian trixie with a shell, curl, dig, iperf3, python3 (also preloaded on every node)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksi_multi import __version__, resources
from ksi_multi.errors import KsiError
from ksi_multi.image import archive, debian, helpers, hosttools, kubernetes, liqo, workloads
from ksi_multi.image import index as image_index
from ksi_multi.run import run

log = logging.getLogger(__name__)

NODE_FILES = "image/node-files"
DEFAULT_SERIES = "1.32"
TOOLBOX_TAG = "localhost/ksi-multi/toolbox:1"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Units that make no sense in a container, or that fail without the host's privileges.
NODE_MASKS = ("getty.target", "console-getty.service", "systemd-firstboot.service", "systemd-udevd.service",
              "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-kernel-config.mount",
              "sys-fs-fuse-connections.mount", "proc-sys-fs-binfmt_misc.automount", "systemd-binfmt.service",
              "systemd-modules-load.service", "systemd-sysctl.service", "systemd-remount-fs.service",
              "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
              "systemd-networkd-wait-online.service", "systemd-resolved.service", "systemd-timesyncd.service")


def _customise_node(root: Path) -> None:
    run(["chroot", str(root), "systemctl", "mask", *NODE_MASKS], timeout=60)
    run(["chroot", str(root), "systemctl", "enable", "containerd.service"], timeout=60)
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").unlink(missing_ok=True)


NODE = debian.RootfsSpec(
    name="node", variant="essential", slim=True, revision=1, customise=_customise_node,
    packages=("systemd", "systemd-sysv", "dbus", "containerd", "runc", "containernetworking-plugins",
              "iptables", "nftables", "iproute2", "conntrack", "socat", "ethtool", "kmod", "ca-certificates",
              "util-linux", "mount", "procps", "kubectl", "curl", "wireguard-tools", "libseccomp2",
              "iputils-ping"))
IPTABLES = debian.RootfsSpec(name="iptables", variant="essential", slim=True,
                             packages=("iptables", "nftables", "conntrack", "kmod"))
TOOLBOX = debian.RootfsSpec(name="toolbox", variant="essential", slim=True,
                            packages=("bash", "curl", "dnsutils", "iperf3", "python3", "procps", "iproute2",
                                      "iputils-ping", "ca-certificates", "netcat-openbsd"))


@dataclass(frozen=True)
class Built:
    node_tag: str
    node_archive: Path
    toolbox_archive: Path
    kubernetes: str
    helpers: dict[str, Path]  # name -> binary next to the archives


class Progress:
    """Prints each step with its duration; keeps the timings for the summary."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.timings: dict[str, float] = {}

    def step(self, name: str, fn, *args, **kwargs):
        self.echo(f"[image] {name} ...")
        started = time.monotonic()
        result = fn(*args, **kwargs)
        self.timings[name] = time.monotonic() - started
        self.echo(f"[image] {name}: {self.timings[name]:.1f} s")
        return result


def _binary_image(path: Path, tag: str, binary: Path, dest: str, entrypoint: list[str] | None = None,
                  base: Path | None = None) -> None:
    layers = [archive.Layer(root=base)] if base else []
    layers.append(archive.Layer(files={dest: (binary, 0o755)}))
    archive.write(path, tag, layers, archive.ImageConfig(entrypoint=entrypoint, env=[PATH_ENV]))


def _component_images(bins: kubernetes.Binaries, iptables_root: Path, toolbox: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    reg = "registry.k8s.io"
    made = []
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        made.append(out / f"{name}.tar")
        _binary_image(made[-1], f"{reg}/{name}:{bins.kubernetes}", bins.bin / name, f"/usr/local/bin/{name}")
    made.append(out / "kube-proxy.tar")
    _binary_image(made[-1], f"{reg}/kube-proxy:{bins.kubernetes}", bins.bin / "kube-proxy",
                  "/usr/local/bin/kube-proxy", base=iptables_root)
    made.append(out / "etcd.tar")
    _binary_image(made[-1], f"{reg}/etcd:{bins.image_tag('etcd')}", bins.bin / "etcd", "/usr/local/bin/etcd")
    made.append(out / "coredns.tar")
    _binary_image(made[-1], f"{reg}/coredns/coredns:{bins.image_tag('coredns')}", bins.bin / "coredns", "/coredns",
                  entrypoint=["/coredns"])
    made.append(out / "pause.tar")
    _binary_image(made[-1], f"{reg}/pause:{bins.image_tag('pause')}", bins.bin / "pause", "/pause",
                  entrypoint=["/pause"])
    made.append(out / "toolbox.tar")
    archive.write(made[-1], TOOLBOX_TAG, [archive.Layer(root=toolbox)],
                  archive.ImageConfig(cmd=["/bin/bash"], env=[PATH_ENV]))
    return made


def _node_layer(bins: kubernetes.Binaries, images: list[Path], work: Path) -> archive.Layer:
    files_dir = resources.path(NODE_FILES)
    containerd = work / "config.toml"
    containerd.write_text((files_dir / "containerd-config.toml").read_text().replace("@PAUSE_TAG@", bins.image_tag("pause")))
    files = {
        "/usr/bin/kubeadm": (bins.bin / "kubeadm", 0o755),
        "/usr/bin/kubelet": (bins.bin / "kubelet", 0o755),
        "/etc/containerd/config.toml": (containerd, 0o644),
        "/etc/systemd/system/kubelet.service": (files_dir / "kubelet.service", 0o644),
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": (files_dir / "10-kubeadm.conf", 0o644),
        "/etc/systemd/system/kubelet.service.d/20-ksi.conf": (files_dir / "20-ksi.conf", 0o644),
        "/usr/local/sbin/ksi-kubelet-cgroups": (files_dir / "ksi-kubelet-cgroups", 0o755),
        "/etc/systemd/system/ksi-images.service": (files_dir / "ksi-images.service", 0o644),
    }
    files.update({f"/ksi/images/{p.name}": (p, 0o644) for p in images})
    return archive.Layer(files=files, links={
        f"/etc/systemd/system/multi-user.target.wants/{unit}": f"/etc/systemd/system/{unit}"
        for unit in ("kubelet.service", "ksi-images.service")})


def build(output: Path, cache_root: Path, series: str = DEFAULT_SERIES,
          echo: Callable[[str], None] = print, workload_names: tuple[str, ...] = (), with_liqo: bool = False) -> Built:
    _require_tools()
    progress = Progress(echo)
    bins = progress.step("kubernetes binaries (Go modules)", kubernetes.ensure, series, cache_root, echo)
    rootfs_cache = cache_root / "rootfs"
    node_root = progress.step("node userland (Debian)", debian.ensure, NODE, rootfs_cache, echo)
    iptables_root = progress.step("kube-proxy base (Debian)", debian.ensure, IPTABLES, rootfs_cache, echo)
    toolbox_root = progress.step("toolbox userland (Debian)", debian.ensure, TOOLBOX, rootfs_cache, echo)
    output.mkdir(parents=True, exist_ok=True)
    work = output / f".build-{bins.kubernetes}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        images = progress.step("control-plane and toolbox images", _component_images, bins, iptables_root,
                               toolbox_root, work / "images")
        node_tag = f"localhost/ksi-multi/node:{bins.kubernetes}"
        node_archive = output / f"node-{bins.kubernetes}.tar"
        node_id = progress.step("node image archive", archive.write, node_archive, node_tag,
                                [archive.Layer(root=node_root), _node_layer(bins, images, work)],
                                archive.ImageConfig(cmd=["/sbin/init"], env=["container=podman", PATH_ENV],
                                                    stop_signal="SIGRTMIN+3"))
        toolbox_archive = output / "toolbox.tar"
        shutil.copyfile(work / "images" / "toolbox.tar", toolbox_archive)
        tools = progress.step("host helpers (Go modules)", helpers.build, cache_root, output)
        tools["iperf3"] = progress.step("iperf3 for the hosts (toolbox)", hosttools.bundle_iperf3, toolbox_root,
                                        output)
        built_workloads = [progress.step(f"{name} image", workloads.build_one, workloads.WORKLOADS[name], output,
                                         rootfs_cache, echo) for name in workload_names]
        liqo_build = progress.step("Liqo (liqoctl, chart, images)", liqo.build, output, cache_root, echo) \
            if with_liqo else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    built = Built(node_tag, node_archive, toolbox_archive, bins.kubernetes, tools)
    index = {"ksi_multi": __version__, "kubernetes": bins.kubernetes,
             "node": {"tag": node_tag, "archive": node_archive.name, "id": f"sha256:{node_id}"},
             "toolbox": {"tag": TOOLBOX_TAG, "archive": toolbox_archive.name,
                         "id": f"sha256:{archive.image_id(toolbox_archive)}"},
             "helpers": {name: {"file": path.name, "sha256": _sha256(path)} for name, path in tools.items()},
             "workloads": _workload_index(output, built_workloads),
             "liqo": _liqo_index(output, liqo_build),
             "timings": {k: round(v, 1) for k, v in progress.timings.items()}}
    (output / "images.json").write_text(json.dumps(index, indent=2) + "\n")
    echo("[image] done: " + ", ".join(f"{k} {v:.0f}s" for k, v in progress.timings.items()))
    return built


def _workload_index(output: Path, built: list[workloads.BuiltWorkload]) -> dict:
    """Workload images built now, and those built before that are still there."""
    previous = (image_index.read(output) or {}).get("workloads", {})
    kept = {name: entry for name, entry in previous.items() if (output / entry.get("archive", "")).is_file()}
    for w in built:
        kept[w.name] = {"tag": w.tag, "archive": w.archive.name, "id": w.image_id,
                        "versions": {k: w.versions[k] for k in workloads.WORKLOADS[w.name].reported if k in w.versions}}
    return dict(sorted(kept.items()))


def _liqo_index(output: Path, built: liqo.LiqoBuild | None) -> dict:
    """The Liqo build made now, or the one made before when it is still there."""
    if built is None:
        previous = (image_index.read(output) or {}).get("liqo") or {}
        return previous if (output / previous.get("archive", "")).is_file() else {}
    rel = {"liqoctl": built.liqoctl, "chart": built.chart, "archive": built.archive}
    return {"version": built.version, "images": built.images,
            "id": {name: f"sha256:{i}" for name, i in zip(built.images, built.image_ids, strict=True)},
            **{key: path.relative_to(output).as_posix() for key, path in rel.items()},
            "liqoctl_sha256": _sha256(built.liqoctl)}


def _require_tools() -> None:
    """Refuse before building anything when a tool the build needs is missing (all of them named)."""
    from ksi_multi import doctor

    failed = doctor.failures(doctor.diagnose_build())
    if failed:
        raise KsiError("image build: " + "; ".join(f"{r.name.removesuffix(' (image build)')}: {r.detail}"
                                                    for r in failed),
                       "; ".join(r.fix for r in failed) + " (ksi-multi doctor --image-build checks again)")


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
