"""Kubernetes, CoreDNS, etcd and pause binaries built from Go modules (recipe: k8s/build-k8s.sh).

The recipe is copied into the build directory and run there: the installed package is never written to
(a recipe may regenerate its wrapper modules for another Kubernetes release)."""

from __future__ import annotations

import hashlib
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksi_multi import resources
from ksi_multi.errors import KsiError
from ksi_multi.image import cachelock, golang
from ksi_multi.run import run

RECIPE = "image/k8s"
BINARIES = ("kubeadm", "kubelet", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
            "coredns", "etcd", "pause")


@dataclass(frozen=True)
class Binaries:
    bin: Path
    versions: dict[str, str]

    @property
    def kubernetes(self) -> str:
        return self.versions["K8S_VERSION"]

    def image_tag(self, name: str) -> str:
        return {"etcd": self.versions["ETCD_IMAGE_TAG"], "coredns": self.versions["COREDNS_IMAGE_TAG"],
                "pause": self.versions["PAUSE_IMAGE_TAG"]}.get(name, self.kubernetes)


def recipe_key(series: str) -> str:
    recipe = resources.path(RECIPE)
    digest = hashlib.sha256(series.encode())
    for f in sorted(p for p in recipe.rglob("*") if p.is_file()):
        digest.update(f.relative_to(recipe).as_posix().encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def _versions(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            parts = shlex.split(value)
            out[key] = parts[0] if len(parts) == 1 else " ".join(parts)
    return out


def split_version(version: str) -> tuple[str, str]:
    """'1.32' -> ('1.32', 'auto'); 'v1.32.5' or '1.32.5' -> ('1.32', 'v1.32.5')."""
    parts = version.lstrip("v").split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts) or parts[0] != "1":
        raise KsiError(f"bad Kubernetes version {version!r}", "give a series like 1.32 or a release like v1.32.5")
    series = ".".join(parts[:2])
    return series, ("v" + ".".join(parts)) if len(parts) == 3 else "auto"


def ensure(version: str, cache_root: Path, echo: Callable[[str], None] = print) -> Binaries:
    """Build (or reuse from the cache) the binaries of a Kubernetes release, or of a series' newest patch."""
    series, exact = split_version(version)
    out = cache_root / "kubernetes" / f"{exact if exact != 'auto' else series}-{recipe_key(series)}"
    bin_dir = out / "bin"
    if (out / ".complete").exists():
        return Binaries(bin_dir, _versions(out / "versions.env"))
    with cachelock.building(out, echo):
        if not (out / ".complete").exists():
            _build(series, exact, out, cache_root, echo)
    return Binaries(bin_dir, _versions(out / "versions.env"))


def _build(series: str, exact: str, out: Path, cache_root: Path, echo: Callable[[str], None]) -> None:
    golang.require("Kubernetes")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "bin").mkdir(parents=True)
    shutil.copytree(resources.path(RECIPE), partial / "recipe")
    echo(f"building Kubernetes {series}.x, CoreDNS, etcd and pause from Go modules (cold: ~10 min on 2 cores) ...")
    started = time.monotonic()
    run(["bash", str(partial / "recipe" / "build-k8s.sh"), "all"], timeout=3600, capture=False,
        extra_env={"K8S_SERIES": series, "K8S_VERSION": exact, "OUT": str(partial / "bin"),
                   "KSI_GO_CACHE": str(golang.cache(cache_root))},
        fix="check that the Go module proxy is reachable (go env GOPROXY)")
    cachelock.publish(partial, out, partial / "bin", BINARIES, "Kubernetes", f"{partial}/logs")
    echo(f"Kubernetes binaries ready in {time.monotonic() - started:.0f} s")
