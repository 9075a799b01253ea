"""Pinned distributions from PyPI, downloaded once into the build cache (sources, so nothing depends on
the build host's Python)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ksi_multi.errors import KsiError
from ksi_multi.image import cachelock
from ksi_multi.run import run


def download(requirements: Sequence[str], cache: Path, echo: Callable[[str], None] = print) -> list[Path]:
    """Each pinned requirement (name==version) as a file in `cache`, downloaded when missing."""
    found = []
    for req in requirements:
        name, sep, version = req.partition("==")
        if not sep or not version:
            raise KsiError(f"PyPI requirement {req!r} is not pinned", "write name==version")
        target = cache / f"{name}-{version}"
        done = target / ".complete"
        if not done.exists():
            with cachelock.building(target, echo):
                if not done.exists():
                    echo(f"downloading {req} from PyPI ...")
                    target.mkdir(parents=True, exist_ok=True)
                    run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                         "--dest", str(target), req], timeout=1800,
                        fix="check that PyPI is reachable (or set PIP_INDEX_URL to your site's mirror)")
                    done.write_text(req + "\n")
        files = [p for p in target.iterdir() if p.is_file() and p.name != ".complete"]
        if len(files) != 1:
            raise KsiError(f"expected one file for {req} in {target}, found {len(files)}", f"remove {target} and build again")
        found.append(files[0])
    return found
