"""Node-local scratch: where container storage and runtime state live (never the shared home)."""

from __future__ import annotations

import os
from pathlib import Path

from ksi_multi.errors import KsiError

# Filesystems that are shared between hosts or cannot hold rootless overlay storage.
NETWORK_FS = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
              "fuse.glusterfs", "fuse.sshfs", "9p", "afs", "panfs", "wekafs", "fuse.beegfs"}


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def fstype_of(path: str, mountinfo: str) -> str:
    """The filesystem type of the mount that holds `path`, from /proc/self/mountinfo text."""
    best, best_type = "", "unknown"
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        if not right:
            continue
        mount_point = _unescape(left.split()[4])
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, right.split()[0]
    return best_type


def base_dir(configured: Path | None, env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if configured is not None:
        return configured
    return Path(env.get("TMPDIR") or "/tmp")


def check_local(path: Path) -> str:
    """Return the filesystem type of `path`; raise when it is shared or missing."""
    if not path.is_dir():
        raise KsiError(f"node-local scratch {path} does not exist", "set scratch (or $TMPDIR) to a local directory")
    real = os.path.realpath(path)
    fstype = fstype_of(real, Path("/proc/self/mountinfo").read_text())
    if fstype in NETWORK_FS:
        raise KsiError(f"scratch {real} is on {fstype}, a shared filesystem; container storage breaks there",
                       "set scratch (or $TMPDIR) to node-local disk, e.g. /tmp or /local")
    return fstype


def job_scratch(base: Path, job_id: str) -> Path:
    """<base>/ksi-multi-<uid>/<jobid>: private to the user, one per job, so jobs never collide."""
    return base / f"ksi-multi-{os.getuid()}" / job_id


def runtime_dir(job_id: str) -> Path:
    """Short per-job directory for sockets (a unix socket path must stay under 108 bytes)."""
    return Path("/tmp") / f"ksi-{os.getuid()}-{job_id}"


def remove(job_dir: Path) -> None:
    """Remove a job's scratch directory, and the per-user directory above it once it is empty."""
    import shutil

    shutil.rmtree(job_dir, ignore_errors=True)
    try:
        job_dir.parent.rmdir()
    except OSError:
        pass  # another job of this user still has its directory there
