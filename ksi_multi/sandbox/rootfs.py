"""The sandbox's Debian trixie userland, built once with mmdebstrap (or debootstrap) and cached by version."""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.run import run
from ksi_multi.sandbox.plan import UID, USER, subid_line

log = logging.getLogger(__name__)

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    # container runtime, rootless
    "podman", "passt", "slirp4netns", "crun", "uidmap", "fuse-overlayfs", "catatonit", "conmon",
    # the HPC side
    "slurm-wlm", "munge",
    # networking tools the node plugins and tests use
    "wireguard-go", "wireguard-tools", "iproute2", "iptables", "iperf3", "curl", "ca-certificates",
    # ksi-multi itself runs from the checkout on these
    "python3", "python3-click", "python3-yaml", "python3-jinja2", "python3-psutil", "python3-pyroute2",
    "python3-kubernetes", "kubectl",
    "tini", "procps", "psmisc", "util-linux", "less",
)
CONTAINERS_CONF = """\
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
LAYOUT_VERSION = 1


def cache_key() -> str:
    text = f"{LAYOUT_VERSION}|{SUITE}|{' '.join(PACKAGES)}|{CONTAINERS_CONF}|{USER}:{UID}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_dir(cache_root: Path) -> Path:
    return cache_root / f"rootfs-{SUITE}-{cache_key()}"


def _builder() -> list[str]:
    if shutil.which("mmdebstrap"):
        return ["mmdebstrap", "--variant=apt", "--mode=root", f"--include={','.join(PACKAGES)}", SUITE]
    if shutil.which("debootstrap"):
        return ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE]
    raise KsiError("neither mmdebstrap nor debootstrap is installed; the sandbox needs one to build its userland",
                   "apt-get install mmdebstrap (or debootstrap)")


def _customise(root: Path) -> None:
    run(["chroot", str(root), "useradd", "--uid", str(UID), "--user-group", "--no-create-home",
         "--home-dir", f"/home/{USER}", "--shell", "/bin/bash", USER], timeout=60)
    for name in ("subuid", "subgid"):
        (root / "etc" / name).write_text(subid_line())
    (root / "etc/containers").mkdir(parents=True, exist_ok=True)
    (root / "etc/containers/containers.conf").write_text(CONTAINERS_CONF)
    (root / "etc/hostname").unlink(missing_ok=True)


def ensure(cache_root: Path, echo=log.info) -> Path:
    """Return the cached rootfs, building it first when this version is not cached yet."""
    root = cache_dir(cache_root)
    if (root / ".complete").exists():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = _builder()
    echo(f"building the sandbox userland ({SUITE}, {len(PACKAGES)} packages) into {root} ...")
    started = time.monotonic()
    run([*cmd, str(partial), MIRROR], timeout=1800,
        fix="check that Debian's mirror is reachable (apt-get update works)")
    _customise(partial)
    (partial / ".complete").write_text(cache_key() + "\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    echo(f"userland ready in {time.monotonic() - started:.0f} s")
    return root
