"""The job's own cgroup inside the site-delegated subtree (cgroup v1), one per node container.

systemd as PID 1 of a rootless node needs a subtree it may write; two systemds must not share one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from ksi_multi.errors import KsiError

ROOT = Path("/sys/fs/cgroup")
V1 = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd")


class JobCgroup:
    def __init__(self, delegated: str, name: str, root: Path = ROOT) -> None:
        self.rel = Path(delegated.strip("/")) / name
        self.root = root

    def paths(self) -> list[Path]:
        return [self.root / c / self.rel for c in V1 if (self.root / c).is_dir()]

    def create(self) -> None:
        for path in self.paths():
            try:
                path.mkdir(exist_ok=True)
                if path.parent.name and (path / "cpuset.cpus").exists():
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        if not (path / f).read_text().strip():
                            (path / f).write_text((path.parent / f).read_text())
            except OSError as exc:
                raise KsiError(f"cannot create the job cgroup {path}: {exc.strerror}",
                               "check the delegated subtree (ksi-multi doctor)") from None

    def join(self) -> None:
        """Move the calling process in (used as preexec_fn: podman and its children start inside)."""
        for path in self.paths():
            (path / "cgroup.procs").write_text(f"{os.getpid()}\n")

    def join_delegated(self) -> None:
        """Move the calling process into the delegated subtree above the job's cgroup (outside the cgroups
        Slurm keeps for the job's steps, and outside the job's own); best effort."""
        for path in self.paths():
            try:
                (path.parent / "cgroup.procs").write_text(f"{os.getpid()}\n")
            except OSError:
                continue

    def pids(self) -> set[int]:
        """Every process in the subtree, in any hierarchy."""
        pids: set[int] = set()
        for path in self.paths():
            for procs in path.rglob("cgroup.procs"):
                try:
                    pids |= {int(p) for p in procs.read_text().split()}
                except FileNotFoundError:
                    continue
        return pids

    def remove(self, timeout: float = 5) -> None:
        """Remove the subtree bottom-up (systemd inside the node creates sub-cgroups). Whatever is still inside
        is the node's remains (a killed node's processes take a moment to go): it is killed first."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for path in self.paths():
            if not path.exists():
                continue
            for d in sorted((Path(p) for p, _, _ in os.walk(path)), key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
