"""Agents killed before their teardown (SIGKILL, out of memory): each agent's reaper removes what it left on
its host at once (the batch script's cleanup step, after the agents, finds the rest), so the job still
leaves nothing."""

import fcntl
import os
import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HOSTS = ("node01", "node02")


def test_agents_killed_without_teardown_leave_nothing(cluster, images):
    job = cluster.sbatch(f"--image-dir {IMAGES}", nodes=2)
    try:
        deadline = time.monotonic() + 300
        while cluster.status(job).get("phase") not in ("mesh", "cluster", "ready", "wait"):
            assert time.monotonic() < deadline, cluster.job_log(job)
            assert cluster.job_state(job) in ("PENDING", "CONFIGURING", "RUNNING"), cluster.job_log(job)
            time.sleep(1)
        for host in HOSTS:
            assert cluster.leftovers(host, job)  # node containers, podman helpers, scratch
            cluster.sh("pkill -KILL -u ksiuser -f '[k]si[-_]multi agent'", host=host)
        assert cluster.wait_job(job, timeout=180) == "FAILED"
    finally:
        cluster.sh(f"scancel {job}", check=False)
    cluster.assert_nothing_left(job, HOSTS, within=35)
    for host in HOSTS:
        log = cluster.job_file(job, f"agent-{host}.log")
        assert f"reaper WARNING the agent of job {job} ended without its teardown: removed" in log, log[-2000:]


CACHE = "/tmp/ksi-multi-1500/image-cache/v1"
OLD, HELD = "a" * 64, "b" * 64  # entries of earlier node images: one unused, one a running job holds


def _node_only(cluster, host: str, args: str = "") -> str:
    job = cluster.sbatch(f"--until node --image-dir {IMAGES} {args}", nodes=1, slurm=f"-w {host}")
    assert cluster.wait_job(job, timeout=400) == "COMPLETED", cluster.job_log(job)
    cluster.assert_nothing_left(job, [host])
    return cluster.job_file(job, f"agent-{host}.log")


def _entries(cluster, host: str) -> list[str]:
    out = cluster.sh(f"ls {CACHE} 2>/dev/null || true", host=host).stdout.split()
    return sorted(e for e in out if len(e) == 64)


def test_the_node_image_cache_is_reused_bounded_and_emptied(cluster, images):
    host = "node04"
    cluster.sh("ksi-multi cleanup --cache", host=host)
    assert "into this host's image cache" in _node_only(cluster, host)
    (entry,) = _entries(cluster, host)
    size = cluster.sh("du -sm /tmp/ksi-multi-1500 | cut -f1", host=host).stdout
    assert "from this host's cache" in _node_only(cluster, host)
    assert _entries(cluster, host) == [entry]
    assert cluster.sh("du -sm /tmp/ksi-multi-1500 | cut -f1", host=host).stdout == size  # nothing grew
    # Two older images: with room for one, the unused one goes, the one a running job uses stays.
    for old in (OLD, HELD):
        cluster.sh(f"mkdir -p {CACHE}/{old}/store && touch -d '1 hour ago' {CACHE}/{old}/.complete "
                   f"&& touch {CACHE}/{old}.use", host=host)
    # held as a job holds it (a shared lock), here from outside the sandbox: the host's /tmp is a directory
    holder = os.open(cluster.box.scratch / host / CACHE.removeprefix("/tmp/") / f"{HELD}.use", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_SH)
    try:
        log = _node_only(cluster, host, "--image-cache 1")
        assert f"image cache: removing {OLD}" in log and HELD not in log
        assert _entries(cluster, host) == sorted([entry, HELD])
        out = cluster.sh("ksi-multi cleanup --cache", host=host).stdout
        assert "removed 1 image(s); 1 kept, in use by a running job" in out
        assert _entries(cluster, host) == [HELD]
    finally:
        os.close(holder)
    assert "removed 1 image(s)" in cluster.sh("ksi-multi cleanup --cache", host=host).stdout
    assert _entries(cluster, host) == []
