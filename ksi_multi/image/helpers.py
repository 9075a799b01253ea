"""The helper programs every host runs next to its node (ksi-wg), built from the Go module the package
carries (ksi_multi/helpers: one module, one directory per program under cmd/)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ksi_multi import resources
from ksi_multi.errors import KsiError
from ksi_multi.image import golang
from ksi_multi.run import run


def names() -> list[str]:
    return sorted(p.name for p in (resources.path("helpers") / "cmd").iterdir() if p.is_dir())


def build(cache_root: Path, out_dir: Path) -> dict[str, Path]:
    """Static binaries (the cgo namespace constructor linked in), one per program; returns name -> path."""
    golang.require("the helpers (ksi-wg)")
    if not shutil.which("gcc"):
        raise KsiError("no C compiler: the helpers link a small C part statically",
                       "install gcc and the static C library (apt install gcc libc6-dev)")
    source = resources.path("helpers")
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in names():
        built[name] = out_dir / name
        run(["go", "build", "-trimpath", "-tags", "netgo,osusergo",
             "-ldflags", "-s -w -linkmode external -extldflags -static", "-o", str(built[name]), f"./cmd/{name}"],
            cwd=source, timeout=1800, extra_env={"CGO_ENABLED": "1", **golang.env(cache_root)},
            fix="check that the Go module proxy is reachable (go env GOPROXY) and that libc6-dev is installed")
    return built
