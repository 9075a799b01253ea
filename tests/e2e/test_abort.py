"""A failure on one node aborts the job everywhere at once through rank 0, with that node's reason in
status.json, instead of the other nodes running on until a timeout ends them."""

import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HOSTS = ("node01", "node02")
SQUAT = "install -d -m 0777 -o nobody /tmp/ksi-multi-1500"  # node02's scratch: another user's directory


def _at(log: str, what: str) -> int:
    """Seconds since midnight of the first log line containing `what`."""
    line = next(line for line in log.splitlines() if what in line)
    hours, minutes, seconds = (int(x) for x in line.split()[0].split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_a_workers_failure_stops_rank_0_at_once_with_its_reason(cluster, images):
    cluster.sh(SQUAT, host="node02", root=True)
    try:
        job = cluster.sbatch(f"--image-dir {IMAGES}", nodes=2, slurm=f"-w {','.join(HOSTS)}")
        started = time.monotonic()
        assert cluster.wait_job(job, timeout=300) == "FAILED", cluster.job_log(job)
        took = time.monotonic() - started
    finally:
        cluster.sh("rm -rf /tmp/ksi-multi-1500", host="node02", root=True)
    status = cluster.status(job)
    assert status["state"] == "failed"
    assert status["error"].startswith("the job was aborted: node02 failed in node: "), status["error"]
    assert "/tmp/ksi-multi-1500 belongs to nobody" in status["error"]
    rank0, worker = cluster.job_file(job, "agent-node01.log"), cluster.job_file(job, "agent-node02.log")
    assert "phase mesh: start" not in rank0  # stopped in its node phase, not after it
    assert "teardown: done" in rank0
    lag = _at(rank0, "teardown: start") - _at(worker, "teardown: start")
    assert 0 <= lag <= 5, f"rank 0 began its teardown {lag} s after node02 failed"
    assert took < 120, f"the job took {took:.0f} s to end"
    cluster.assert_nothing_left(job, HOSTS, within=35)
