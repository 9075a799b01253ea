"""The node image kept on each host between a user's jobs: `podman load` of the node image once per image and
host instead of once per job. A job's own store reads the cached one as an additional image store (its layers
are the container's read-only lower layers: nothing is copied). At most `image_cache` images stay, the least
recently used go first and never one a running job uses; `ksi-multi cleanup --cache` empties it.

Beside the image, each entry keeps a containerd seed: a /var/lib/containerd in which the node image's preloaded
images are imported and unpacked, made by the first job that boots a node from the entry; every later node links
its layers instead of importing them again at boot.

Layout: <scratch>/ksi-multi-<uid>/image-cache/<LAYOUT>/<image id>/{store/,.complete,containerd/} with `<id>.use`
beside each entry (every job using the entry holds a shared lock on it) and `cache.lock` (held while the cache
changes).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksi_multi import scratch
from ksi_multi.errors import KsiError
from ksi_multi.image import cachelock
from ksi_multi.podman import PodmanHome
from ksi_multi.run import CommandError

log = logging.getLogger("ksi_multi.agent")

LAYOUT = "v1"  # a new layout starts empty; `cleanup --cache` removes the old ones too
COMPLETE = ".complete"
IMAGE_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


@dataclass(frozen=True)
class Entry:
    key: str
    last_used: float
    in_use: bool


def to_evict(entries: list[Entry], current: str, keep: int) -> list[str]:
    """The entries to delete so that at most `keep` stay, `current` among them: the least recently used first,
    never one in use (the cache may then hold more until those jobs end)."""
    others = sorted((e for e in entries if e.key != current), key=lambda e: e.last_used, reverse=True)
    return [e.key for e in others[max(keep - 1, 0):] if not e.in_use]


def cache_key(image_id: str) -> str:
    found = IMAGE_ID.fullmatch(image_id or "")
    if not found:
        raise KsiError(f"the node image's id {image_id!r} in images.json is not a sha256 digest",
                       "rebuild the images (ksi-multi image build)")
    return found.group(1)


class ImageCache:
    def __init__(self, root: Path, keep: int, trusted: Path) -> None:
        """`trusted`: the directory above `root` from which on every directory must be this user's own."""
        self.root = root
        self.dir = root / LAYOUT
        self.keep = keep
        self.trusted = trusted
        self._held: list[int] = []
        self._provided = ""

    @classmethod
    def of(cls, configured: Path | None, keep: int, scratch_base: Path) -> ImageCache:
        """The configured cache directory, or the default: node-local, in this user's scratch directory."""
        if configured is not None:
            return cls(configured.expanduser(), keep, configured.expanduser().parent)
        return cls(scratch_base / f"ksi-multi-{os.getuid()}" / "image-cache", keep, scratch_base)

    def store(self, key: str) -> Path:
        return self.dir / key / "store"

    def _changing(self) -> contextlib.AbstractContextManager[None]:
        """The cache's lock: one job (or cleanup) changes it at a time; another job loading waits here."""
        scratch.ensure_private(self.trusted, self.dir)
        return cachelock.building(
            self.dir / "cache", log.info, timeout=1800,
            waiting="node: waiting for another job of yours loading the node image on this host",
            fix="another of your jobs is stuck loading the node image: end it, or set image_cache: 0")

    def _use_lock(self, key: str) -> int:
        return os.open(self.dir / f"{key}.use", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def entries(self) -> list[Entry]:
        """Every entry, complete or not, with whether a job holds it (call with the cache's lock held)."""
        out = []
        for path in sorted(self.dir.iterdir()) if self.dir.is_dir() else []:
            if not path.is_dir() or path.is_symlink() or not IMAGE_ID.fullmatch(path.name):
                continue
            fd = self._use_lock(path.name)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                in_use = False
            except BlockingIOError:
                in_use = True
            finally:
                os.close(fd)
            marker = path / COMPLETE
            out.append(Entry(path.name, marker.stat().st_mtime if marker.exists() else 0.0, in_use))
        return out

    def provide(self, home: PodmanHome, archive: Path, tag: str, image_id: str) -> Path:
        """The store holding `tag` (loaded from `archive` unless cached), held for this job until `release`."""
        key = cache_key(image_id)
        with self._changing():
            entry = self.dir / key
            if not (entry / COMPLETE).exists():
                self._delete(home, key)  # what an interrupted load left
                self._load(home, key, archive, tag)
            else:
                log.info("node: node image %s from this host's cache (%s)", tag, entry)
            os.utime(entry / COMPLETE)
            fd = self._use_lock(key)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._held.append(fd)
            for old in to_evict(self.entries(), key, self.keep):
                log.info("node: image cache: removing %s (least recently used; image_cache keeps %d)",
                         old, self.keep)
                self._delete(home, old)
        self._provided = key
        return self.store(key)

    def containerd_seed(self, home: PodmanHome, make: Callable[[Path], None]) -> Path:
        """The containerd seed of the image `provide` gave this job: made by `make(directory)` unless there."""
        if not self._provided:
            raise RuntimeError("containerd_seed before provide")
        seed = self.dir / self._provided / "containerd"
        with self._changing():
            if not seed.is_dir():
                partial = seed.with_name("containerd.partial")
                remove_tree(home, partial)
                started = time.monotonic()
                make(partial)
                partial.rename(seed)
                log.info("node: preloaded images unpacked once into this host's image cache in %.1f s",
                         time.monotonic() - started)
        return seed

    def release(self) -> None:
        while self._held:
            os.close(self._held.pop())

    def _load(self, home: PodmanHome, key: str, archive: Path, tag: str) -> None:
        store = self.store(key)
        store.mkdir(mode=0o700, parents=True)
        started = time.monotonic()
        flags = self._flags(home, key)
        home.podman(*flags, "load", "--quiet", "--input", str(archive), timeout=900,
                    fix=f"check {archive} (rebuild it with ksi-multi image build)")
        loaded = home.podman(*flags, "image", "inspect", "--format", "{{.Id}}", tag, check=False).stdout.strip()
        if loaded != key:
            self._delete(home, key)
            raise KsiError(f"{archive} holds {tag} with id {loaded or 'none'}, but images.json says {key}",
                           "the archive changed after it was built: rebuild the images (ksi-multi image build)")
        (self.dir / key / COMPLETE).write_text("")
        log.info("node: loaded %s from %s in %.1f s into this host's image cache", tag, archive,
                 time.monotonic() - started)

    def _flags(self, home: PodmanHome, key: str) -> list[str]:
        return ["--root", str(self.store(key)), "--runroot", str(home.runtime / f"cache-{key[:12]}")]

    def _delete(self, home: PodmanHome, key: str) -> None:
        remove_tree(home, self.dir / key)
        shutil.rmtree(home.runtime / f"cache-{key[:12]}", ignore_errors=True)
        (self.dir / f"{key}.use").unlink(missing_ok=True)

    def clear(self, home: PodmanHome) -> tuple[list[str], list[str]]:
        """Delete every entry no running job uses (and older layouts); return (removed, kept in use)."""
        removed, busy = [], []
        with self._changing():
            for entry in self.entries():
                if entry.in_use:
                    busy.append(entry.key)
                else:
                    self._delete(home, entry.key)
                    removed.append(entry.key)
            for old in self.root.iterdir():
                if old.name != LAYOUT:
                    remove_tree(home, old)
                    removed.append(old.name)
        return removed, busy


def remove_tree(home: PodmanHome, path: Path) -> None:
    """Delete `path`; what belongs to the user's sub-ids (image layers) is removed inside the user namespace."""
    shutil.rmtree(path, ignore_errors=True)
    if not path.exists():
        return
    try:
        home.podman("unshare", "rm", "-rf", str(path), timeout=300)
    except CommandError:
        pass
    shutil.rmtree(path, ignore_errors=True)
