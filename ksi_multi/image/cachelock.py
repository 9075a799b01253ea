"""One builder per cache entry: two `image build`s (or a test run and a benchmark) building the same entry at
once would delete each other's partial work."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def building(entry: Path, echo: Callable[[str], None] = print, *, waiting: str = "",
             timeout: float | None = None, fix: str = "") -> Iterator[None]:
    """Hold `entry`'s lock (a file next to it) while it is built; wait, saying so (`waiting`), while another
    holds it: for good, or at most `timeout` seconds (then KsiError with `fix`)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = entry.with_name(entry.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo(waiting or f"waiting for another build of {entry.name} to finish ...")
            _wait(fd, lock, timeout, fix)
        yield
    finally:
        os.close(fd)


def _wait(fd: int, lock: Path, timeout: float | None, fix: str) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    from ksi_multi.errors import KsiError

    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise KsiError(f"{lock} stayed locked for {timeout:g} s", fix) from None
            time.sleep(0.5)


def publish(partial: Path, out: Path, produced: Path, names: Iterable[str], what: str, see: str) -> None:
    """A finished build in `partial` becomes the cache entry `out`, once each of `names` is in `produced`."""
    from ksi_multi.errors import KsiError

    missing = [name for name in names if not (produced / name).is_file()]
    if missing:
        raise KsiError(f"the {what} build produced no {', '.join(missing)}", f"see {see}")
    (partial / ".complete").write_text("")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
