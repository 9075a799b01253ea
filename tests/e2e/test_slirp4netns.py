"""The node's network helper is selectable: the same cluster with slirp4netns instead of pasta."""

import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox


def test_slirp4netns_cluster_ready_reachable_and_cleaned(cluster, images):
    job = cluster.sbatch(f"--image-dir {IMAGES} --net-backend slirp4netns", nodes=1)
    try:
        status = cluster.wait_status(job, "ready")
        host = status["nodes"][0]["name"]
        assert "slirp4netns" in cluster.sh("pgrep -u ksiuser -a slirp4netns", host=host).stdout
        assert "pasta" not in cluster.sh("pgrep -u ksiuser -a pasta || true", host=host).stdout
        out = cluster.sh(f"KUBECONFIG={status['kubeconfig']} kubectl get nodes --no-headers").stdout
        assert f"{host}" in out and " Ready " in out
    finally:
        cluster.sh(f"scancel {job}")
    assert cluster.wait_job(job, timeout=60) == "CANCELLED"
    deadline = time.monotonic() + 30
    while cluster.leftovers(host, job) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.leftovers(host, job) == []
