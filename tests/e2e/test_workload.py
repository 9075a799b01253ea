"""`ksi-multi submit -N 1 -- workload`: the workload runs against the ready cluster, then everything ends."""

import re
import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox


def test_workload_sees_the_cluster_and_its_exit_status_is_the_jobs(cluster, images):
    out = cluster.sh(f"ksi-multi submit -N 1 --image-dir {IMAGES} -- "
                     "bash -c 'kubectl get nodes --no-headers > ~/workload.out; exit 3'").stdout
    job = re.search(r"submitted job (\d+)", out).group(1)
    assert f".ksi-multi/jobs/{job}/kubeconfig" in out
    assert cluster.wait_job(job, timeout=600) == "FAILED"
    assert "ExitCode=3:0" in cluster.sh(f"scontrol show job {job} -o", root=True).stdout
    assert " Ready " in cluster.sh("cat ~/workload.out; rm -f ~/workload.out").stdout
    host = cluster.status(job)["nodes"][0]["name"]
    deadline = time.monotonic() + 15
    while cluster.leftovers(host, job) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.leftovers(host, job) == []
    assert cluster.status(job)["state"] == "stopped"
