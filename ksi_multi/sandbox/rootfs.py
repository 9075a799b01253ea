"""The sandbox's Debian trixie userland: what a compute node of an HPC site has installed."""

from __future__ import annotations

from pathlib import Path

from ksi_multi.image import debian, workloads
from ksi_multi.run import run
from ksi_multi.sandbox.plan import UID, USER, subid_line

PACKAGES = (
    # container runtime, rootless
    "podman", "passt", "slirp4netns", "crun", "uidmap", "fuse-overlayfs", "catatonit", "conmon",
    # the HPC side
    "slurm-wlm", "munge",
    # networking tools the node plugins and tests use
    "wireguard-go", "wireguard-tools", "iproute2", "iptables", "iperf3", "curl", "ca-certificates", "iputils-ping",
    # the site's resolver, on the login host
    "dnsmasq-base",
    # ksi-multi's dependencies; the user installs ksi-multi itself from a wheel into a venv on top of them
    "python3", "python3-venv", "python3-click", "python3-yaml", "python3-jinja2", "python3-psutil",
    "python3-pyroute2", "python3-kubernetes", "python3-cryptography", "kubectl",
    # the plot of `ksi-multi bench` (its `plot` extra)
    "python3-matplotlib",
    # a Dask user's client on the login host: the versions the dask workload image has
    "python3-dask", "python3-distributed", "python3-numpy", "python3-pandas", "python3-lz4",
    # ... and dask-kubernetes' KubeCluster (PyPI, as in the image), on Debian's packages for the rest
    *workloads.DASK_KUBERNETES_DEBIAN,
    # a Spark user's spark-submit on the login host (pyspark from PyPI, the spark image's version)
    "openjdk-21-jre-headless", "python3-pip", "python3-setuptools",
    "tini", "procps", "psmisc", "util-linux", "less",
)
CONTAINERS_CONF = """\
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def _customise(root: Path) -> None:
    run(["chroot", str(root), "useradd", "--uid", str(UID), "--user-group", "--no-create-home",
         "--home-dir", f"/home/{USER}", "--shell", "/bin/bash", USER], timeout=60)
    for name in ("subuid", "subgid"):
        (root / "etc" / name).write_text(subid_line())
    (root / "etc/containers").mkdir(parents=True, exist_ok=True)
    (root / "etc/containers/containers.conf").write_text(CONTAINERS_CONF)
    (root / "etc/hostname").unlink(missing_ok=True)


SPEC = debian.RootfsSpec(name="sandbox", packages=PACKAGES, revision=2, customise=_customise,
                         pip=(f"pyspark=={workloads.PYSPARK}", f"py4j=={workloads.PY4J}", *workloads.DASK_KUBERNETES),
                         imports=workloads.DASK_KUBERNETES_IMPORTS)


def ensure(cache_root: Path, echo=print) -> Path:
    return debian.ensure(SPEC, cache_root, echo)
