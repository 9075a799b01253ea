"""One builder per cache entry: two `image build`s (or a test run and a benchmark) building the same entry at
once would delete each other's partial work."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def building(entry: Path, echo: Callable[[str], None] = print) -> Iterator[None]:
    """Hold `entry`'s lock (a file next to it) while it is built; wait, saying so, while another holds it."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(entry.with_name(entry.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo(f"waiting for another build of {entry.name} to finish ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
