"""A worker whose mesh port is blocked: the job fails naming the host and the UDP endpoint; nothing is left.
The job sets its mesh port, as on a site whose firewall opens only that one."""

import time

import pytest

from tests.helpers import IMAGES, NODES

pytestmark = pytest.mark.sandbox

BLOCK = "iptables {} INPUT -p udp --dport 51820 -j DROP"


@pytest.mark.parametrize(("mesh", "message"), [
    ("wireguard", "mesh: node01: no WireGuard handshake after 20 s with node04 (UDP 10.77.0.14:51820)"),
    ("vxlan", "mesh: node01: the VXLAN mesh cannot reach node04 (10.250.0.4, UDP 10.77.0.14:51820) after 20 s"),
], ids=["wireguard", "vxlan"])
def test_blocked_mesh_port_is_named(cluster, images, mesh, message):
    cluster.sh(BLOCK.format("-A"), host="node04", root=True)
    try:
        job = cluster.sbatch(f"--image-dir {IMAGES} --rendezvous-timeout 20 --mesh {mesh} --mesh-port 51820", nodes=NODES)
        assert cluster.wait_job(job, timeout=600) == "FAILED", cluster.job_log(job)
    finally:
        cluster.sh(BLOCK.format("-D"), host="node04", root=True)
    status = cluster.status(job)
    assert status["state"] == "failed"
    assert message in status["error"]
    assert "check that UDP port 51820 (mesh_port) is open between the hosts" in cluster.job_file(job, "agent-node01.log")
    hosts = [h.name for h in cluster.plan.compute]
    deadline = time.monotonic() + 15
    while any(cluster.leftovers(h, job) for h in hosts) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {h: cluster.leftovers(h, job) for h in hosts} == {h: [] for h in hosts}
