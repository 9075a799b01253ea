"""Liqo for `federation: liqo`, built offline: liqoctl for the hosts, the component images for the nodes and the
Helm chart that ships inside Liqo's Go module (liqoctl installs from it, no chart repository).

Only the components of a peering without Liqo's own network are built (the job's mesh already routes every
node's pod and service ranges): controller-manager, webhook, crd-replicator, virtual-kubelet. They share
one archive: a small Debian layer and one layer with every binary, one image (tag, entrypoint) per component.
The wrapper module (image/liqowrap) pins the version apart from the Kubernetes build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksi_multi import resources
from ksi_multi.errors import KsiError
from ksi_multi.image import archive, cachelock, debian, golang
from ksi_multi.run import output, run

MODULE = "github.com/liqotech/liqo"
WRAPPER = "image/liqowrap"
REPOSITORY = "localhost/ksi-multi/liqo"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# component (cmd/NAME, image REPOSITORY/NAME) -> the chart's values key of its image
COMPONENTS = {
    "liqo-controller-manager": "controllerManager",
    "webhook": "webhook",
    "crd-replicator": "crdReplicator",
    "virtual-kubelet": "virtualKubelet",
}
BINARIES = ("liqoctl", *COMPONENTS)
BASE = debian.RootfsSpec(name="liqo-base", variant="essential", slim=True, packages=("ca-certificates",))
FIX = "check that the Go module proxy is reachable (go env GOPROXY)"


@dataclass(frozen=True)
class LiqoBuild:
    version: str
    liqoctl: Path
    chart: Path  # deployments/liqo of the module: the chart and its CRD subchart
    archive: Path
    images: dict[str, str]  # component -> tag
    image_ids: tuple[str, ...]  # in the order of `images`


def version() -> str:
    """The Liqo version the wrapper module pins."""
    for line in (resources.path(WRAPPER) / "go.mod").read_text().splitlines():
        parts = line.split("//")[0].split()
        if len(parts) == 2 and parts[0] == MODULE:
            return parts[1]
        if len(parts) == 3 and parts[:2] == ["require", MODULE]:
            return parts[2]
    raise KsiError(f"{WRAPPER}/go.mod requires no {MODULE}", "reinstall ksi-multi from a complete checkout")


def wrapper_key() -> str:
    """The cache key of a build: the wrapper module and what is built from it."""
    wrapper = resources.path(WRAPPER)
    digest = hashlib.sha256(" ".join(BINARIES).encode())
    for f in sorted(p for p in wrapper.iterdir() if p.is_file()):
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:12]


def ensure_binaries(cache_root: Path, echo: Callable[[str], None] = print) -> Path:
    """Build (or reuse from the cache) liqoctl and the components; return the directory that holds them."""
    out = cache_root / "liqo" / f"{version()}-{wrapper_key()}"
    if not (out / ".complete").exists():
        with cachelock.building(out, echo):
            if not (out / ".complete").exists():
                _build(out, cache_root, echo)
    return out / "bin"


def _build(out: Path, cache_root: Path, echo: Callable[[str], None]) -> None:
    golang.require("Liqo")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copytree(resources.path(WRAPPER), partial / "module", copy_function=shutil.copyfile)
    env = golang.env(cache_root) | {"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64"}
    echo(f"building Liqo {version()} (liqoctl and {len(COMPONENTS)} components) from Go modules "
         "(cold: ~10 min on 2 cores) ...")
    started = time.monotonic()
    run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(partial / "bin") + "/",
         *(f"{MODULE}/cmd/{name}" for name in BINARIES)],
        cwd=partial / "module", timeout=3600, extra_env=env, fix=FIX)
    cachelock.publish(partial, out, partial / "bin", BINARIES, "Liqo", str(partial))
    echo(f"Liqo binaries ready in {time.monotonic() - started:.0f} s")


def chart_source(cache_root: Path) -> Path:
    """deployments/liqo in the module cache (downloaded with the build)."""
    module = json.loads(output(["go", "mod", "download", "-json", f"{MODULE}@{version()}"],
                               cwd=resources.path(WRAPPER), timeout=600, extra_env=golang.env(cache_root), fix=FIX))
    chart = Path(module["Dir"]) / "deployments" / "liqo"
    if not (chart / "Chart.yaml").is_file():
        raise KsiError(f"{MODULE}@{version()} carries no chart at deployments/liqo", "pin a Liqo release that does")
    return chart


def build(output_dir: Path, cache_root: Path, echo: Callable[[str], None] = print) -> LiqoBuild:
    """liqoctl, the chart and the component archive in `output_dir/liqo`."""
    bins = ensure_binaries(cache_root, echo)
    base = debian.ensure(BASE, cache_root / "rootfs", echo)
    tag = version()
    target = output_dir / "liqo"
    target.mkdir(parents=True, exist_ok=True)
    images = {name: f"{REPOSITORY}/{name}:{tag}" for name in COMPONENTS}
    archive_path = target / f"liqo-{tag}.tar"
    binaries = archive.Layer(files={f"/usr/bin/{name}": (bins / name, 0o755) for name in COMPONENTS})
    ids = archive.write_many(archive_path, [archive.Layer(root=base), binaries],
                       [(images[name], archive.ImageConfig(entrypoint=[f"/usr/bin/{name}"], env=[PATH_ENV]))
                        for name in COMPONENTS])
    liqoctl = target / "liqoctl"
    shutil.copyfile(bins / "liqoctl", liqoctl.with_name("liqoctl.partial"))
    liqoctl.with_name("liqoctl.partial").chmod(0o755)
    liqoctl.with_name("liqoctl.partial").replace(liqoctl)
    chart = target / "chart"
    shutil.rmtree(chart, ignore_errors=True)
    shutil.copytree(chart_source(cache_root), chart, copy_function=shutil.copyfile)
    return LiqoBuild(tag, liqoctl, chart, archive_path, images, tuple(ids))
