"""Where one job lives on one host: its scratch directory, podman store and runtime dir, its cgroup.
The node phase creates these and the cleanup command removes them: both find them here."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

from ksi_multi import doctor, scratch
from ksi_multi.cgroups import JobCgroup
from ksi_multi.config import Config
from ksi_multi.podman import PodmanHome


@dataclass(frozen=True)
class JobHost:
    scratch: Path  # <scratch>/ksi-multi-<uid>/<job>
    podman: PodmanHome  # store below scratch, sockets in the short runtime dir
    cgroup: JobCgroup | None  # None where there is no delegated cgroup v1 subtree


def job_host(cfg: Config, job_id: str) -> JobHost:
    job_scratch = scratch.job_scratch(scratch.base_dir(cfg.scratch), job_id)
    version, delegated, _ = doctor.delegated_cgroup(cfg.cgroup_parent, getpass.getuser())
    return JobHost(scratch=job_scratch,
                   podman=PodmanHome(job_scratch / "podman", runtime=scratch.runtime_dir(job_id)),
                   cgroup=JobCgroup(delegated, f"job-{job_id}") if version == 1 and delegated else None)
