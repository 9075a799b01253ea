"""`ksi-multi submit -N 1 -- workload`: the workload runs against the ready cluster, then everything ends."""

import json
import re
import time

import pytest

from ksi_multi.sandbox.cluster import REPO
from tests.helpers import IMAGES, NODES

pytestmark = pytest.mark.sandbox


def test_workload_sees_the_cluster_and_its_exit_status_is_the_jobs(cluster, images):
    """Also: settings given to submit reach every step of the batch script (a jobs_dir of its own here: the
    workload starts only if wait-ready looks there)."""
    out = cluster.sh(f"ksi-multi submit -N 1 --image-dir {IMAGES} --jobs-dir ~/e2e-jobs -- "
                     "bash -c 'kubectl get nodes --no-headers > ~/workload.out; exit 3'").stdout
    job = re.search(r"submitted job (\d+)", out).group(1)
    assert f"e2e-jobs/{job}/kubeconfig" in out
    assert cluster.wait_job(job, timeout=600) == "FAILED"
    assert "ExitCode=3:0" in cluster.sh(f"scontrol show job {job} -o", root=True).stdout
    assert " Ready " in cluster.sh("cat ~/workload.out; rm -f ~/workload.out").stdout
    status = lambda: json.loads(cluster.sh(f"cat ~/e2e-jobs/{job}/status.json").stdout)  # noqa: E731
    host = status()["nodes"][0]["name"]
    deadline = time.monotonic() + 15
    while cluster.leftovers(host, job) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.leftovers(host, job) == []
    assert status()["state"] == "stopped"
    assert "jobs_dir: /home/ksiuser/e2e-jobs" in cluster.sh(f"cat ~/e2e-jobs/{job}/config.yaml").stdout
    cluster.sh("rm -rf ~/e2e-jobs")


def test_dask_and_spark_as_the_workload_of_a_4_node_job(cluster, images):
    """The workload images come with the job (`images`); Dask from the batch host, Spark in cluster mode from
    the batch host and in client mode from a pod (executors spread over >= 3 nodes each time); the job's exit
    status is the workload's."""
    cluster.sh(f"cp {REPO}/tests/e2e/workloads_job.sh ~/e2e-batch.sh")  # the shared home: every host reads it
    out = cluster.sh(f"KSI_IMAGE_DIR={IMAGES} ksi-multi submit -N {NODES} --images {IMAGES}/dask.tar,{IMAGES}/spark.tar "
                     "-- bash $HOME/e2e-batch.sh $HOME/e2e-batch").stdout
    job = re.search(r"submitted job (\d+)", out).group(1)
    state = cluster.wait_job(job, timeout=1500)
    reports = {kind: cluster.sh(f"cat ~/e2e-batch.{kind}", check=False).stdout
               for kind in ("dask", "spark", "spark-client")}
    cluster.sh("rm -f ~/e2e-batch.*")
    assert state == "COMPLETED", (reports, cluster.job_log(job))
    assert "ExitCode=0:0" in cluster.sh(f"scontrol show job {job} -o", root=True).stdout
    dask, spark = json.loads(reports["dask"]), json.loads(reports["spark"])
    assert dask["correct"] and len([n for n, c in dask["tasks_per_node"].items() if c]) >= 3, dask
    assert spark["correct"] and spark["words"] == 1_200_000 and len(spark["tasks_per_node"]) >= 3, spark
    client = json.loads(reports["spark-client"])
    assert client["correct"] and client["words"] == 1_200_000 and len(client["tasks_per_node"]) >= 3, client
