"""Debian root filesystems from the mirror (mmdebstrap, or debootstrap), cached by what goes into them."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.image import cachelock, pypi
from ksi_multi.run import run

log = logging.getLogger(__name__)

SUITE = "trixie"
MIRROR = os.environ.get("KSI_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Documentation and translations: nobody reads them inside a node or a workload image. Packages that
# register man pages as alternatives (Java) still need the directory to exist.
SLIM = ("--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        '--essential-hook=mkdir -p "$1/usr/share/man/man1"')


@dataclass(frozen=True)
class RootfsSpec:
    """What goes into a root filesystem; `revision` changes whenever `customise` changes."""

    name: str
    packages: Sequence[str]
    variant: str = "apt"
    slim: bool = False
    revision: int = 1
    customise: Callable[[Path], None] | None = field(default=None, compare=False)
    # Python distributions Debian does not package, pinned (name==version), installed from PyPI with the
    # userland's own pip (so python3-pip and python3-setuptools must be among `packages`).
    pip: Sequence[str] = ()
    # Python modules that must import in the finished userland: PyPI's and Debian's versions may disagree
    # beyond what the distributions declare (a cache that cannot run is never marked complete).
    imports: Sequence[str] = ()

    def key(self) -> str:
        text = f"{self.revision}|{SUITE}|{self.variant}|{self.slim}|{' '.join(sorted(self.packages))}"
        if self.pip:
            text += f"|pip {' '.join(sorted(self.pip))}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def path(self, cache_root: Path) -> Path:
        return cache_root / f"{self.name}-{SUITE}-{self.key()}"


def builder(spec: RootfsSpec) -> list[str]:
    if shutil.which("mmdebstrap"):
        mode = "root" if os.geteuid() == 0 else "unshare"
        cmd = ["mmdebstrap", f"--variant={spec.variant}", f"--mode={mode}", f"--include={','.join(spec.packages)}"]
        return [*cmd, *(SLIM if spec.slim else ()), SUITE]
    if shutil.which("debootstrap") and os.geteuid() == 0:
        variant = "minbase" if spec.variant in ("apt", "essential", "minbase") else spec.variant
        return ["debootstrap", f"--variant={variant}", f"--include={','.join(spec.packages)}", SUITE]
    raise KsiError("neither mmdebstrap nor debootstrap is installed; building a Debian userland needs one",
                   "apt-get install mmdebstrap (or debootstrap)")


def _pip_install(spec: RootfsSpec, root: Path, files: list[Path]) -> None:
    """Install downloaded distributions with the userland's pip, offline (build isolation needs an index)."""
    staging = root / "tmp/ksi-pip"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        for f in files:
            shutil.copyfile(f, staging / f.name)
        run(["chroot", str(root), "python3", "-m", "pip", "install", "--break-system-packages", "--no-index",
             "--no-deps", "--no-build-isolation", "--no-cache-dir", "--root-user-action=ignore", "--no-compile",
             *[f"/tmp/ksi-pip/{f.name}" for f in files]],
            timeout=1800, fix=f"the {spec.name} userland needs python3-pip and python3-setuptools")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(spec: RootfsSpec, cache_root: Path, echo: Callable[[str], None] = log.info) -> Path:
    """Return the cached root filesystem for `spec`, building it first if this version is not cached."""
    root = spec.path(cache_root)
    if (root / ".complete").exists():
        return root
    with cachelock.building(root, echo):
        if (root / ".complete").exists():  # built meanwhile by the holder of the lock
            return root
        return _build(spec, root, cache_root, echo)


def _build(spec: RootfsSpec, root: Path, cache_root: Path, echo: Callable[[str], None]) -> Path:
    cmd = builder(spec)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    echo(f"building the {spec.name} userland ({SUITE}, {len(spec.packages)} packages) ...")
    started = time.monotonic()
    run([*cmd, str(partial), MIRROR], timeout=1800, fix="check that Debian's mirror is reachable (apt-get update works)")
    if spec.pip:
        _pip_install(spec, partial, pypi.download(spec.pip, cache_root.parent / "pypi", echo))
    if spec.imports:
        # with a /proc of its own (a private mount, gone with the command): some modules read it on import
        run(["unshare", "--mount", "--pid", "--fork", f"--mount-proc={partial}/proc", "chroot", str(partial),
             "python3", "-c", "; ".join(f"import {m}" for m in spec.imports)], timeout=300,
            fix=f"pin versions in the {spec.name} userland's pip list that work with Debian's packages")
    if spec.customise:
        spec.customise(partial)
    (partial / ".complete").write_text(spec.key() + "\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    echo(f"{spec.name} userland ready in {time.monotonic() - started:.0f} s")
    return root
