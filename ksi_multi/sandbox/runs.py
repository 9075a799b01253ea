"""Sandbox names for test and benchmark runs: each run takes a name of its own and holds a lock on it for
its lifetime, so that a run never takes down another run's sandbox; a sandbox whose run has ended (its
lock is free) is taken down by the next run."""

from __future__ import annotations

import fcntl
import os
import secrets
import string
from collections.abc import Callable
from pathlib import Path

LOCKS = Path("/var/lib/ksi-multi/sandbox-runs")
ALPHABET = string.ascii_lowercase + string.digits


class RunName:
    """This run's sandbox name (`prefix` + random, 6 characters in all), locked until the process exits."""

    def __init__(self, prefix: str, locks: Path = LOCKS) -> None:
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.name = prefix + "".join(secrets.choice(ALPHABET) for _ in range(6 - len(prefix)))
        self.lock = locks / f"{self.name}.lock"
        self._fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        self.lock.unlink(missing_ok=True)
        os.close(self._fd)


def stale(prefix: str, locks: Path = LOCKS) -> list[str]:
    """Names of sandboxes of runs with this prefix that have ended (nobody holds their lock)."""
    found = []
    for lock in sorted(locks.glob(f"{prefix}*.lock")) if locks.is_dir() else []:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its run goes on
        finally:
            os.close(fd)
        found.append(lock.name.removesuffix(".lock"))
    return found


def reap(prefix: str, down: Callable[[str], None], locks: Path = LOCKS) -> list[str]:
    """Take down the sandboxes of ended runs; return their names."""
    names = stale(prefix, locks)
    for name in names:
        down(name)
        (locks / f"{name}.lock").unlink(missing_ok=True)
    return names
