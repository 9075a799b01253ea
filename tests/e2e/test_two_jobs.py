"""Two jobs of one user on the same two hosts at once: each takes ports of its own, both come up Ready, and
cancelling one leaves the other Ready and untouched."""

import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HOSTS = ("node01", "node02")
SHARE = f"--oversubscribe -w {','.join(HOSTS)}"


def test_two_jobs_share_hosts_and_one_cancelled_leaves_the_other(cluster, images):
    first = cluster.sbatch(f"--image-dir {IMAGES}", nodes=2, slurm=SHARE)
    second = cluster.sbatch(f"--image-dir {IMAGES}", nodes=2, slurm=SHARE)
    try:
        one = cluster.wait_status(first, "ready", timeout=900)
        two = cluster.wait_status(second, "ready", timeout=900)
        assert [n["host"] for n in one["nodes"]] == [n["host"] for n in two["nodes"]]
        assert one["server"] != two["server"], (one["server"], two["server"])
        for a, b in zip(one["nodes"], two["nodes"], strict=True):
            assert a["mesh_port"] != b["mesh_port"], (a, b)
        for status in (one, two):
            assert cluster.ready_nodes(status["kubeconfig"]) == [[h, "Ready"] for h in HOSTS]
        kept = {h: cluster.job_processes(h, second) for h in HOSTS}
        assert all(kept.values()), kept

        cluster.sh(f"scancel {first}")
        assert cluster.wait_job(first, timeout=90) == "CANCELLED"
        deadline = time.monotonic() + 15
        while any(cluster.job_processes(h, first) for h in HOSTS) and time.monotonic() < deadline:
            time.sleep(0.5)
        for h in HOSTS:
            assert cluster.job_processes(h, first) == set(), h
            gone = cluster.sh(f"ls -d /tmp/ksi-multi-1500/{first} /tmp/ksi-1500-{first} "
                              f"/sys/fs/cgroup/*/ksi-multi/ksiuser/job-{first} 2>/dev/null || true", host=h).stdout
            assert gone.strip() == "", gone
            assert cluster.job_processes(h, second) == kept[h], h  # not one process of the other job went
        after = cluster.status(second)
        assert after["state"] == "ready" and after["error"] is None
        assert cluster.ready_nodes(two["kubeconfig"]) == [[h, "Ready"] for h in HOSTS]
    finally:
        cluster.sh(f"scancel {first} {second}", check=False)
    assert cluster.wait_job(second, timeout=90) == "CANCELLED"
    cluster.assert_nothing_left(second, HOSTS, within=35)
