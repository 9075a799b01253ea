"""The helper programs every host runs next to its node (ksi-wg), built from the Go module the package
carries (ksi_multi/helpers: one module, one directory per program under cmd/)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ksi_multi import resources
from ksi_multi.errors import KsiError
from ksi_multi.image import golang
from ksi_multi.run import CommandError, output, run

WIREGUARD = "golang.zx2c4.com/wireguard"
FIX = "check that the Go module proxy is reachable (go env GOPROXY) and that libc6-dev is installed"


def names() -> list[str]:
    return sorted(p.name for p in (resources.path("helpers") / "cmd").iterdir() if p.is_dir())


def patch_files(source: Path) -> list[Path]:
    """The changes to wireguard-go (wireguard-patch/*.patch, unified diffs against the module), in the order
    applied."""
    return sorted((source / "wireguard-patch").glob("*.patch"))


def apply_patch(tree: Path, patch: Path) -> None:
    try:
        run(["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "--silent", "-d", str(tree),
             "-i", str(patch)], timeout=60)
    except CommandError as err:
        raise KsiError(f"{patch.name} does not apply to {WIREGUARD}: {(err.stdout or err.stderr).strip()}",
                       "update ksi_multi/helpers/wireguard-patch to the version in go.mod") from None


def patched_wireguard(source: Path, env: dict[str, str]) -> Path:
    """A copy of the go.mod version of wireguard-go with wireguard-patch/ applied, made once per version."""
    module = json.loads(output(["go", "mod", "download", "-json", WIREGUARD], cwd=source, timeout=600,
                               extra_env=env, fix=FIX))
    patches = patch_files(source)
    digest = hashlib.sha256()
    for file in patches:
        digest.update(file.read_bytes())
    patch = digest.hexdigest()[:12]  # a changed patch, a new copy
    target = Path(env["GOPATH"]).parent / "patched" / f"wireguard@{module['Version']}-{patch}"
    if (target / "go.mod").exists():
        return target
    staging = target.with_name(target.name + f".{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(module["Dir"], staging, copy_function=shutil.copyfile)  # files of the module cache are 0444
    for folder, _, _ in os.walk(staging):
        os.chmod(folder, 0o755)
    try:
        for file in patches:
            apply_patch(staging, file)
    except KsiError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        staging.rename(target)
    except OSError:  # a concurrent build made the same copy first: use theirs
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "go.mod").exists():
            raise
    return target


def patched_modfile(source: Path, wireguard: Path, env: dict[str, str]) -> Path:
    """The go.mod the helpers are built and tested with: the package's own stays as shipped; this copy replaces
    wireguard-go by the patched copy `wireguard` (beside it, with its go.sum)."""
    modfile = wireguard.with_name(wireguard.name + ".helpers.mod")
    shutil.copyfile(source / "go.mod", modfile)
    shutil.copyfile(source / "go.sum", modfile.with_suffix(".sum"))
    run(["go", "mod", "edit", f"-modfile={modfile}", f"-replace={WIREGUARD}={wireguard}"], cwd=source, timeout=60,
        extra_env=env)
    return modfile


def build(cache_root: Path, out_dir: Path) -> dict[str, Path]:
    """Static binaries (the cgo namespace constructor linked in), one per program; returns name -> path."""
    golang.require("the helpers (ksi-wg)")
    if not shutil.which("patch"):
        raise KsiError("no patch program: the helpers' build changes wireguard-go with it",
                       "install it (apt install patch)")
    if not shutil.which("gcc"):
        raise KsiError("no C compiler: the helpers link a small C part statically",
                       "install gcc and the static C library (apt install gcc libc6-dev)")
    source = resources.path("helpers")
    env = golang.env(cache_root)
    modfile = patched_modfile(source, patched_wireguard(source, env), env)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in names():
        built[name] = out_dir / name
        run(["go", "build", f"-modfile={modfile}", "-trimpath", "-tags", "netgo,osusergo",
             "-ldflags", "-s -w -linkmode external -extldflags -static", "-o", str(built[name]), f"./cmd/{name}"],
            cwd=source, timeout=1800, extra_env={"CGO_ENABLED": "1", **env}, fix=FIX)
    return built
