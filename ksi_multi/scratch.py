"""Node-local scratch: where container storage and runtime state live (never the shared home)."""

from __future__ import annotations

import os
import pwd
import stat
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


def ensure_private(base: Path, path: Path) -> None:
    """Make `path` and the directories between `base` and it 0700 directories of this user, or check that the
    existing ones are. Their names are predictable and `base` (/tmp) is shared: a directory another user made
    first, or a link put there, is refused before anything of the job is written through it."""
    current = base
    for part in path.relative_to(base).parts:
        current = current / part
        try:
            os.mkdir(current, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(current)
        if not stat.S_ISDIR(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a directory"
            raise KsiError(f"{current} is {kind}, owned by {_user(info.st_uid)}: refusing to write the job there",
                           "remove it if it is yours; else ask an admin, or set scratch or jobs_dir elsewhere")
        if info.st_uid != os.getuid():
            raise KsiError(f"{current} belongs to {_user(info.st_uid)}, not to you: refusing to write the job there",
                           f"ask {_user(info.st_uid)} or an admin to remove it, or move the job elsewhere (scratch, jobs_dir)")
        if info.st_mode & 0o077:
            os.chmod(current, 0o700)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def own_directories(*paths: Path) -> bool:
    """Whether each path is a directory of this user itself, not a link to one or someone else's."""
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
    return True


def remove(job_dir: Path) -> None:
    """Remove a job's scratch directory, and the per-user directory above it once it is empty. Nothing is
    removed through a path that another user made or linked elsewhere."""
    import shutil

    if not own_directories(job_dir.parent, job_dir):
        return
    shutil.rmtree(job_dir, ignore_errors=True)
    try:
        job_dir.parent.rmdir()
    except OSError:
        pass  # another job of this user still has its directory there
