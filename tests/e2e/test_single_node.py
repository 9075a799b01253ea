"""Issue: a rootless single-node cluster from `sbatch -N 1`, used from the login host like any cluster."""

import json
import re
import time

import pytest

from ksi_multi.sandbox.cluster import REPO
from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HERE = f"{REPO}/tests/e2e"
PHASES = {"doctor", "rendezvous", "node", "mesh", "cluster", "ready"}


@pytest.fixture(scope="module")
def job(cluster, images):
    job_id = cluster.sbatch(f"--image-dir {IMAGES}", nodes=1)
    cluster.wait_status(job_id, "ready")
    yield job_id
    cluster.sh(f"scancel {job_id}", check=False)


def test_ready_with_kubeconfig_and_timings(cluster, job):
    status = cluster.status(job)
    assert status["state"] == "ready" and status["phase"] == "wait"
    assert [n["ready"] for n in status["nodes"]] == [True]
    assert PHASES <= set(status["timings"])
    kubeconfig = status["kubeconfig"]
    assert cluster.sh(f"stat -c %a {kubeconfig}").stdout.strip() == "600"
    host = status["nodes"][0]["host"]
    assert re.fullmatch(rf"https://{re.escape(host)}:\d+", status["server"]), status["server"]
    assert f"server: {status['server']}" in cluster.sh(f"cat {kubeconfig}").stdout


def test_kubectl_from_the_login_host(cluster, job):
    kubeconfig = cluster.status(job)["kubeconfig"]
    out = cluster.sh(f"bash {HERE}/smoke.sh {kubeconfig}", timeout=600).stdout.split()
    passed = {out[i + 1] for i, word in enumerate(out) if word == "ok"}
    assert passed == {"deployment", "service-dns", "exec", "logs", "port-forward", "pvc-bound", "job-complete",
                      "job-wrote-volume"}


def test_python_client_with_verified_tls(cluster, job):
    status = cluster.status(job)
    result = json.loads(cluster.sh(f"python3 {HERE}/client_checks.py {status['kubeconfig']}").stdout)
    name = status["nodes"][0]["name"]
    assert result["nodes"][name]["ready"] is True
    assert result["configmap"] == {"k": "v"}
    assert result["verify_ssl"] is True
    assert result["wrong_ca"] == "refused"


def test_kubectl_works_on_the_node_host_itself(cluster, job):
    """A workload script runs on the job's first node: the API must answer there too."""
    status = cluster.status(job)
    out = cluster.sh(f"KUBECONFIG={status['kubeconfig']} kubectl get nodes --no-headers",
                     host=status["nodes"][0]["name"]).stdout
    assert " Ready " in out


def test_scancel_removes_everything_within_killwait(cluster, job):
    host = cluster.status(job)["nodes"][0]["name"]
    assert cluster.leftovers(host, job)  # the running job has processes and scratch there
    started = time.monotonic()
    cluster.sh(f"scancel {job}")
    assert cluster.wait_job(job, timeout=60) == "CANCELLED"
    while cluster.leftovers(host, job) and time.monotonic() - started < 30:  # KillWait=30 in the sandbox
        time.sleep(0.5)
    assert cluster.leftovers(host, job) == []
    status = cluster.status(job)
    assert status["state"] == "stopped"
    assert status["reason"] == "the job was cancelled or requeued (scancel, scontrol requeue) while holding the cluster", status
    log = cluster.job_file(job, f"agent-{host}.log")
    assert "teardown: done" in log
