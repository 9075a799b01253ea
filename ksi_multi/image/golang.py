"""The Go toolchain the image build uses: version check and one versioned cache for every Go build."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.run import CommandError, output

CACHE_VERSION = "v1"
MIN_GO = (1, 24)
FIX = "install Go >= 1.24 (golang-1.24 on Debian trixie, or go.dev/dl) and put it on PATH"


def version() -> tuple[int, int] | None:
    """The installed Go's (major, minor), or None when there is no `go` on PATH."""
    if not shutil.which("go"):
        return None
    try:
        text = output(["go", "env", "GOVERSION"], timeout=60, extra_env={"GOTOOLCHAIN": "local"})
    except CommandError:
        return None
    m = re.match(r"go(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def problem(found: tuple[int, int] | None) -> str | None:
    """Why this Go cannot build the images, or None."""
    if found is None:
        return "Go is not installed (or `go env` fails)"
    if found < MIN_GO:
        return f"Go {found[0]}.{found[1]} is too old (need {MIN_GO[0]}.{MIN_GO[1]} or newer)"
    return None


def require(what: str) -> None:
    why = problem(version())
    if why:
        raise KsiError(f"{why}; {what} is built from Go modules", FIX)


def cache(cache_root: Path) -> Path:
    return cache_root / "go" / CACHE_VERSION


def env(cache_root: Path) -> dict[str, str]:
    """Module and build caches under the versioned cache; never a toolchain download, never ~/go."""
    go = cache(cache_root)
    return {"GOMODCACHE": str(go / "gomodcache"), "GOCACHE": str(go / "gocache"), "GOPATH": str(go / "gopath"),
            "GOFLAGS": "-mod=readonly -modcacherw -buildvcs=false", "GOTOOLCHAIN": "local", "GOWORK": "off"}
