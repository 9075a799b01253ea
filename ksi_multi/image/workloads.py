"""Workload images built offline the way the node image is: a Debian root filesystem (plus PyPI where
Debian has no package), written as a docker-archive that `ksi-multi load` or the `images` key puts on
every node. They are also the pattern for users who build their own.

dask   Debian trixie: python3 + dask, distributed, numpy, pandas (the versions of the login-node client
       in the sandbox, which installs the same Debian packages), tini as PID 1; also dask-kubernetes from
       PyPI, so the same image runs the Dask operator (kopf) for KubeCluster.
spark  Debian trixie: openjdk-21-jre-headless + python3 + pyspark from PyPI (its sdist carries Spark's jars,
       spark-kubernetes among them) + tini + an entrypoint for the driver/executor roles of Spark's
       Kubernetes backend. SPARK_HOME is the pyspark package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ksi_multi import resources
from ksi_multi.errors import KsiError
from ksi_multi.image import archive, debian

WORKLOAD_FILES = "image/workload-files"
MANIFESTS = "manifests"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class SourceFix:
    """One change to an installed file (`path` a glob in the root filesystem): `old`, found exactly once,
    becomes `new`; the fixed file goes into the image's last layer."""
    path: str
    old: str
    new: str
    why: str


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    rootfs: debian.RootfsSpec
    version_of: str  # the Python distribution whose version tags the image
    entrypoint: tuple[str, ...]
    reported: tuple[str, ...]  # versions recorded in images.json and the image's label
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()  # the image's default command (after the entrypoint)
    files: tuple[tuple[str, str], ...] = ()  # (path in the image, "workload-files:NAME" or "manifests:PATH")
    fixes: tuple[SourceFix, ...] = ()  # changes to what the userland installed

    def tag(self, version: str) -> str:
        return f"localhost/ksi-multi/{self.name}:{version}"


# dask-kubernetes (its operator and KubeCluster) and what Debian does not package; pure Python, so the same
# files serve the image and the login host. kopf 1.38 is the newest that accepts Debian's click 8.1;
# httpx-ws 0.7 the newest that runs on Debian's anyio 4.8 (0.9 declares anyio>=4 but needs 4.10).
DASK_KUBERNETES_IMPORTS = ("dask_kubernetes.operator", "dask_kubernetes.operator.controller", "kopf", "kr8s")
DASK_KUBERNETES = ("dask-kubernetes==2026.3.0", "kopf==1.38.0", "kr8s==0.20.15", "kubernetes-asyncio==36.1.0",
                   "pykube-ng==23.6.0", "httpx-ws==0.7.2", "python-jsonpath==2.2.2")
# Debian's packages for everything else they need.
DASK_KUBERNETES_DEBIAN = ("python3-kubernetes", "python3-aiohttp", "python3-click", "python3-yaml", "python3-rich",
                          "python3-httpx", "python3-httpcore", "python3-anyio", "python3-wsproto", "python3-box",
                          "python3-cachetools", "python3-cryptography", "python3-packaging", "python3-iso8601",
                          "python3-pythonjsonlogger", "python3-requests", "python3-urllib3", "python3-dateutil",
                          "python3-six", "python3-certifi", "python3-typing-extensions")
# The operator sets a new cluster "Pending" once it has made the scheduler's Service, while the Service's own
# handler sets it "Running": whichever write lands last wins, and when "Pending" does, the cluster stays
# Pending and KubeCluster gives up after its timeout (dask/dask-kubernetes#968). Both now say "Running",
# unless the Service is a LoadBalancer still waiting for its address (then the Service's handler decides).
OPERATOR_PHASE_FIX = SourceFix(
    path="usr/local/lib/python3*/dist-packages/dask_kubernetes/operator/controller/controller.py",
    old=("    logger.info(f\"Worker group {data['metadata']['name']} created in {namespace}.\")\n\n"
         "    patch.status[\"phase\"] = \"Pending\"\n"),
    new=("    logger.info(f\"Worker group {data['metadata']['name']} created in {namespace}.\")\n\n"
         "    waits_for_address = scheduler_service.raw.get(\"spec\", {}).get(\"type\") == \"LoadBalancer\"\n"
         "    patch.status[\"phase\"] = \"Pending\" if waits_for_address else \"Running\"\n"),
    why="a new DaskCluster could stay Pending for good (dask/dask-kubernetes#968)")
DASK = WorkloadSpec(
    name="dask", version_of="dask", entrypoint=("/usr/bin/tini", "--"),
    reported=("python", "dask", "distributed", "numpy", "pandas", "cloudpickle", "msgpack", "dask-kubernetes",
              "kopf"),
    env=("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"), cmd=("python3",),
    files=(("/opt/ksi-multi/install-crds.py", "workload-files:install-crds.py"),),
    fixes=(OPERATOR_PHASE_FIX,),
    rootfs=debian.RootfsSpec(
        name="dask", variant="essential", slim=True, pip=DASK_KUBERNETES, imports=DASK_KUBERNETES_IMPORTS,
        packages=("python3", "python3-dask", "python3-distributed", "python3-numpy", "python3-pandas",
                  "python3-psutil", "python3-lz4", "python3-pip", "python3-setuptools", *DASK_KUBERNETES_DEBIAN,
                  "tini", "ca-certificates", "procps", "netbase", "tzdata")))

PYSPARK = "4.3.0"
PY4J = "0.10.9.9"  # the version pyspark 4.3 requires
SPARK_HOME = "/usr/local/lib/python3.13/dist-packages/pyspark"
SPARK = WorkloadSpec(
    name="spark", version_of="pyspark", entrypoint=("/opt/ksi-multi/spark-entrypoint.sh",),
    reported=("python", "pyspark", "py4j"),
    env=(f"SPARK_HOME={SPARK_HOME}", "JAVA_HOME=/usr/lib/jvm/java-21-openjdk-amd64", "PYSPARK_PYTHON=python3",
         "PYTHONUNBUFFERED=1"),
    files=(("/opt/ksi-multi/spark-entrypoint.sh", "workload-files:spark-entrypoint.sh"),
           ("/opt/ksi-multi/examples/wordcount.py", "manifests:spark/wordcount.py"),
           ("/opt/ksi-multi/templates/executor.yaml", "manifests:spark/templates/executor.yaml")),
    rootfs=debian.RootfsSpec(
        name="spark", variant="essential", slim=True, pip=(f"pyspark=={PYSPARK}", f"py4j=={PY4J}"),
        packages=("openjdk-21-jre-headless", "python3", "python3-pip", "python3-setuptools", "tini", "bash",
                  "procps", "ca-certificates", "netbase", "tzdata")))

WORKLOADS: dict[str, WorkloadSpec] = {spec.name: spec for spec in (DASK, SPARK)}


@dataclass(frozen=True)
class BuiltWorkload:
    name: str
    tag: str
    archive: Path
    image_id: str
    versions: dict[str, str]


def names(text: str) -> tuple[str, ...]:
    """`dask,spark` or `all` -> the workload names, refusing unknown ones."""
    wanted = tuple(WORKLOADS) if text.strip() == "all" else tuple(w.strip() for w in text.split(",") if w.strip())
    unknown = [w for w in wanted if w not in WORKLOADS]
    if unknown:
        raise KsiError(f"unknown workload image(s): {', '.join(unknown)}",
                       f"choose from {', '.join(WORKLOADS)} or all")
    return wanted


def python_versions(root: Path) -> dict[str, str]:
    """Versions of the Python distributions installed in a root filesystem (Debian's and pip's), and of
    Python itself; Debian's suffixes (+dfsg) dropped."""
    sites = [str(p) for p in sorted(root.glob("usr/lib/python3*/dist-packages"))
             + sorted(root.glob("usr/local/lib/python3*/dist-packages"))
             + sorted(root.glob("opt/*/lib/python3*/site-packages"))]
    found = {dist.metadata["Name"].lower().replace("_", "-"): dist.version.split("+")[0]
             for dist in metadata.distributions(path=sites) if dist.metadata["Name"]}
    py = sorted(p.name for p in root.glob("usr/bin/python3.*") if re.fullmatch(r"python3\.\d+", p.name))
    if py:
        found["python"] = py[-1].removeprefix("python")
    return found


def apply_fixes(root: Path, fixes: tuple[SourceFix, ...], work: Path) -> dict[str, tuple[Path, int]]:
    """The fixed copies of installed files (written under `work`) as layer files: path in image -> (copy, mode)."""
    out = {}
    for fix in fixes:
        found = sorted(root.glob(fix.path))
        text = found[0].read_text() if len(found) == 1 else ""
        if text.count(fix.old) != 1:
            raise KsiError(f"cannot apply a fix to {fix.path} in {root} ({fix.why}): {len(found)} file(s) "
                           f"found, the text to change {text.count(fix.old)} time(s)",
                           "the pinned package versions changed: update the fix in ksi_multi/image/workloads.py")
        copy = work / found[0].relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(text.replace(fix.old, fix.new))
        os.utime(copy, ns=(found[0].stat().st_atime_ns, found[0].stat().st_mtime_ns))  # the same archive each build
        out["/" + str(found[0].relative_to(root))] = (copy, 0o644)
    return out


def _source(name: str) -> Path:
    base, _, rel = name.partition(":")
    return {"workload-files": resources.path(WORKLOAD_FILES), "manifests": resources.path(MANIFESTS)}[base] / rel


def build_one(spec: WorkloadSpec, output: Path, rootfs_cache: Path,
              echo: Callable[[str], None] = print) -> BuiltWorkload:
    root = debian.ensure(spec.rootfs, rootfs_cache, echo)
    versions = python_versions(root)
    version = versions.get(spec.version_of)
    if not version:
        raise KsiError(f"the {spec.name} image's userland has no {spec.version_of} installed ({root})",
                       f"remove {root} and build again")
    tag = spec.tag(version)
    path = output / f"{spec.name}.tar"
    layers = [archive.Layer(root=root)]
    files = {dest: (_source(src), 0o755) for dest, src in spec.files}
    files.update(apply_fixes(root, spec.fixes, output / f".{spec.name}-fixes"))
    if files:
        layers.append(archive.Layer(files=files))
    image_id = archive.write(path, tag, layers, archive.ImageConfig(
        entrypoint=list(spec.entrypoint), cmd=list(spec.cmd) or None, env=[PATH_ENV, *spec.env],
        labels={"io.ksi-multi.versions": " ".join(f"{k}={v}" for k, v in sorted(versions.items())
                                                  if k in spec.reported)}))
    return BuiltWorkload(spec.name, tag, path, f"sha256:{image_id}", versions)
