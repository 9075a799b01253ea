"""A worker whose mesh port is blocked: the job fails naming the host and the UDP endpoint; nothing is left.
The job sets its mesh port, as on a site whose firewall opens only that one."""

import re

import pytest

from tests.helpers import IMAGES, NODES

pytestmark = pytest.mark.sandbox

BLOCK = "iptables {} INPUT -p udp --dport 51820 -j DROP"


@pytest.fixture(scope="module")
def warm(cluster, images):
    """Every host's node image cache filled first: a host that still loads the image and unpacks its preloaded
    images while the others wait would fail the key exchange within this test's short rendezvous timeout, not
    the handshake this test is about."""
    job = cluster.sbatch(f"--image-dir {images} --until node", nodes=NODES)
    assert cluster.wait_job(job, timeout=600) == "COMPLETED", cluster.job_log(job)


# Whichever node gives up first aborts the job: rank 0 naming node04, or node04 (or another) naming the others.
@pytest.mark.parametrize(("mesh", "message"), [
    ("wireguard", r"no WireGuard handshake after 20 s with .*node0\d \(UDP 10\.77\.0\.1\d:51820\)"),
    # plain and vxlan wait with the same probe (a ping over the mesh): one of them here
    ("plain", r"the plain mesh cannot reach .*node0\d \(10\.250\.0\.\d, UDP 10\.77\.0\.1\d:51820\) after 20 s"),
], ids=["wireguard", "plain"])
def test_blocked_mesh_port_is_named(cluster, images, warm, mesh, message):
    cluster.sh(BLOCK.format("-A"), host="node04", root=True)
    try:
        job = cluster.sbatch(f"--image-dir {IMAGES} --rendezvous-timeout 20 --mesh {mesh} --mesh-port 51820", nodes=NODES)
        assert cluster.wait_job(job, timeout=600) == "FAILED", cluster.job_log(job)
    finally:
        cluster.sh(BLOCK.format("-D"), host="node04", root=True)
    status = cluster.status(job)
    assert status["state"] == "failed"
    assert re.search(message, status["error"]) and "node04" in status["error"], status["error"]
    logs = "".join(cluster.job_file(job, f"agent-{h.name}.log") for h in cluster.plan.compute)
    assert "check that UDP port 51820 (mesh_port) is open between the hosts" in logs
    hosts = [h.name for h in cluster.plan.compute]
    cluster.assert_nothing_left(job, hosts, within=15)
