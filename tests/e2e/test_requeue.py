"""`scontrol requeue` of a Ready job: the first run tears down, the second comes up Ready on the same job id
with fresh join material (a new cluster: new CA, new bootstrap token, new per-job secret)."""

import re
import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HOSTS = ("node01", "node02")


def _run_facts(cluster, job: str) -> dict | None:
    """What belongs to one run of the job: its CA, its bootstrap (join) token, its secret; None while a run is
    between its teardown and the next one's cluster phase (the files come and go)."""
    d = f"~/.ksi-multi/jobs/{job}"
    out = cluster.sh(f"grep -o 'certificate-authority-data: .*' {d}/kubeconfig && "
                     f"kubectl --kubeconfig {d}/kubeconfig -n kube-system get secrets -o name "
                     "--field-selector type=bootstrap.kubernetes.io/token | sort | tr '\\n' ' ' && echo && "
                     f"sha256sum {d}/secret", check=False)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) < 3:
        return None
    ca, tokens, secret = lines[:3]
    return {"ca": ca.split()[1], "tokens": tokens.strip(), "secret": secret.split()[0]}


def _restarts(cluster, job: str) -> int:
    out = cluster.sh(f"scontrol show job {job} -o", root=True).stdout
    return int(re.search(r"Restarts=(\d+)", out).group(1))


def test_requeued_job_comes_up_ready_again_with_fresh_join_material(cluster, images):
    job = cluster.sbatch(f"--image-dir {IMAGES}", nodes=2, slurm=f"-w {','.join(HOSTS)}")
    try:
        cluster.wait_status(job, "ready", timeout=600)
        first = _run_facts(cluster, job)
        assert first, cluster.job_log(job)
        cluster.sh(f"scontrol requeue {job}")
        deadline = time.monotonic() + 900
        while True:
            status = cluster.status(job)
            if _restarts(cluster, job) >= 1 and status.get("state") == "ready":
                second = _run_facts(cluster, job)
                if second and second["ca"] != first["ca"]:
                    break
            assert status.get("state") != "failed", f"{status}\n{cluster.job_log(job)}"
            assert time.monotonic() < deadline, f"the requeued job is not ready again: {status}\n{cluster.job_log(job)}"
            time.sleep(2)
        assert all(second[k] != first[k] for k in first), (first, second)
        assert [n["ready"] for n in status["nodes"]] == [True, True]
        assert cluster.ready_nodes(status["kubeconfig"]) == [[h, "Ready"] for h in HOSTS]
    finally:
        cluster.sh(f"scancel {job}", check=False)
    assert cluster.wait_job(job, timeout=90) == "CANCELLED"
    cluster.assert_nothing_left(job, HOSTS, within=35)
