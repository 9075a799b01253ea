"""What the benchmarks share: root check, the CLI, and a fresh sandbox of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksi_multi.sandbox.cluster import Sandbox  # noqa: E402


def ksi(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "ksi_multi", *args], check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL)


def fresh_sandbox(name: str) -> Sandbox:
    """The benchmark's own sandbox, taken down first if an earlier run left it up."""
    if os.geteuid() != 0:
        raise SystemExit("run as root: the sandbox needs namespaces, mounts and cgroups")
    box = Sandbox(name)
    if box.alive():
        ksi("sandbox", "down", "--name", name)
    return box
