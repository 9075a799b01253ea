"""Agents killed before their teardown (SIGKILL, out of memory): each agent's reaper removes what it left on
its host at once (the batch script's cleanup step, after the agents, finds the rest), so the job still
leaves nothing."""

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
