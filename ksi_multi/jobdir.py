"""The per-job directory on the shared filesystem: secret, rendezvous endpoint, status, logs."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ksi_multi.errors import KsiError
from ksi_multi.scratch import ensure_private

SECRET_BYTES = 32


def write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write a file atomically (temp file + rename) with the given mode from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


class JobDir:
    """~/.ksi-multi/jobs/<jobid>/ (0700) and the files in it."""

    def __init__(self, jobs_dir: Path, job_id: str) -> None:
        self.path = jobs_dir / job_id
        self.job_id = job_id

    secret_file = property(lambda self: self.path / "secret")
    endpoint_file = property(lambda self: self.path / "rendezvous.json")
    status_file = property(lambda self: self.path / "status.json")
    kubeconfig_file = property(lambda self: self.path / "kubeconfig")
    timings_file = property(lambda self: self.path / "timings.json")
    config_file = property(lambda self: self.path / "config.yaml")  # the job's effective configuration
    stop_reason_file = property(lambda self: self.path / "stop-reason")  # why the batch script stopped the job

    def log_file(self, hostname: str) -> Path:
        return self.path / f"agent-{hostname}.log"

    def create(self) -> None:
        """Create the directory (and its parents) readable by the owner only; refuse a foreign one or a link."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            ensure_private(self.path.parent, self.path)
        except OSError as exc:
            raise KsiError(f"cannot create the job directory {self.path}: {exc.strerror}",
                           "check that your home directory is writable on this node") from None

    def prepare(self) -> None:
        """Fresh state for a job: directory, a new secret, nothing left from an earlier run of a requeued job
        (its endpoint, status, kubeconfig, timings, stop reason) for the new run's agents to mistake."""
        self.create()
        for stale in (self.endpoint_file, self.status_file, self.kubeconfig_file,
                      self.timings_file, self.stop_reason_file):
            stale.unlink(missing_ok=True)
        write_private(self.secret_file, secrets.token_hex(SECRET_BYTES))

    def read_secret(self) -> str:
        try:
            st = self.secret_file.stat()
            if st.st_mode & 0o077:
                raise KsiError(f"{self.secret_file} is readable by others (mode {st.st_mode & 0o777:o})",
                               f"chmod 600 {self.secret_file}, then start the job again")
            return self.secret_file.read_text().strip()
        except FileNotFoundError:
            raise KsiError(f"the job secret {self.secret_file} does not exist",
                           "the job directory is prepared by `ksi-multi prepare` (the batch script runs it)") from None

    def read_note(self, path: Path, limit: int = 200) -> str:
        """The first line of a short text file, printable characters only; "" when there is none."""
        try:
            with open(path, errors="replace") as fh:
                line = fh.read(limit).split("\n", 1)[0]
        except OSError:
            return ""
        return "".join(c for c in line if c.isprintable()).strip()

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise KsiError(f"{path} is not valid JSON: {exc}") from None
