"""Each virtual host gets its own cgroup in every v1 hierarchy: it becomes that host's cgroup-namespace root."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ksi_multi.cgroups import V1
from ksi_multi.errors import KsiError

ROOT = Path("/sys/fs/cgroup")
HIERARCHIES = V1  # every v1 hierarchy a node container needs


def base(sandbox_name: str) -> Path:
    return Path("ksi-sandbox") / sandbox_name


def require_v1() -> None:
    missing = [h for h in HIERARCHIES if not (ROOT / h / "cgroup.procs").exists()]
    if missing:
        raise KsiError(f"the sandbox needs the cgroup v1 hierarchies; missing: {', '.join(missing)}",
                       "run the sandbox on a host with cgroup v1 (hybrid) mounts under /sys/fs/cgroup")


def create(sandbox_name: str, host: str) -> None:
    rel = base(sandbox_name) / host
    for h in HIERARCHIES:
        path = ROOT / h / rel
        path.mkdir(parents=True, exist_ok=True)
        if h == "cpuset":
            for level in (*reversed(rel.parents[:-1]), rel):
                d = ROOT / h / level
                parent = d.parent
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not (d / f).read_text().strip():
                        (d / f).write_text((parent / f).read_text())


def join(sandbox_name: str, host: str, pid: int | None = None) -> None:
    """Move a process (default: this one) into the host's cgroups."""
    rel = base(sandbox_name) / host
    for h in HIERARCHIES:
        (ROOT / h / rel / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")


def _tree(sandbox_name: str) -> list[Path]:
    dirs = []
    for h in HIERARCHIES:
        top = ROOT / h / base(sandbox_name)
        if top.is_dir():
            dirs += [Path(d) for d, _, _ in os.walk(top)]
    return dirs


def pids(sandbox_name: str) -> set[int]:
    found = set()
    for d in _tree(sandbox_name):
        try:
            found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
        except OSError:
            pass
    return found


def kill_all(sandbox_name: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (left := pids(sandbox_name)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    if left:
        raise KsiError(f"sandbox processes survive SIGKILL: {sorted(left)}", "look at them with ps; then run down again")


def remove(sandbox_name: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        busy = []
        for d in sorted(_tree(sandbox_name), key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                busy.append(d)
        if not busy:
            break
        if time.monotonic() > deadline:
            raise KsiError(f"cannot remove sandbox cgroups: {busy[0]} is busy", "run `ksi-multi sandbox down` again")
        time.sleep(0.2)
    for h in HIERARCHIES:
        top = ROOT / h / "ksi-sandbox"
        try:
            top.rmdir()
        except OSError:
            pass
