"""The coordinator and the WireGuard mesh of 16 hosts, without Kubernetes (`--until mesh`): every node
handshakes with every other. A sandbox of its own (16 virtual hosts); the nodes share one copy of the
node image through a cache directory every host sees."""

import re

import pytest

from ksi_multi.sandbox import runs
from ksi_multi.sandbox.cluster import Sandbox
from tests.helpers import IMAGES, Cluster, ksi

pytestmark = pytest.mark.sandbox

WIDE = 16
SHARED_CACHE = "/home/ksiuser/.ksi-multi/image-cache"
MESH_LINE = re.compile(r"mesh: wireguard (\S+) \(MTU \d+\), reaches (\d+) peer\(s\) \([^)]*\): (.*)$", re.M)


@pytest.fixture(scope="module")
def wide(dist, images):
    run = runs.RunName("t")
    box = Sandbox(run.name)
    ksi("sandbox", "up", "-N", str(WIDE), "--name", run.name, "--wheel", str(dist.wheel), timeout=1200)
    try:
        yield Cluster(box)
    finally:
        ksi("sandbox", "down", "--name", run.name, timeout=1200)
        run.release()
    assert box.leftovers() == []


def test_every_pair_of_16_nodes_handshakes(wide):
    job = wide.sbatch(f"--until mesh --image-dir {IMAGES} --image-cache-dir {SHARED_CACHE}", nodes=WIDE)
    assert wide.wait_job(job, timeout=1500) == "COMPLETED", wide.job_log(job)
    status = wide.status(job)
    assert status["state"] == "stopped" and "until phase mesh" in status["reason"], status
    hosts = [h.name for h in wide.plan.compute]
    addresses = {}
    for host in hosts:
        log = wide.sh(f"cat ~/.ksi-multi/jobs/{job}/agent-{host}.log").stdout
        found = MESH_LINE.search(log)
        assert found, f"{host}: no mesh line in its log:\n{log[-3000:]}"
        addresses[host] = found.group(1)
        peers = found.group(3).split()
        assert int(found.group(2)) == WIDE - 1
        assert sorted(peers) == sorted(set(hosts) - {host}), f"{host} reached {peers}"  # "(no handshake)" fails
        # a node without Kubernetes: it waited for systemd only (containerd and the kubelet never started)
        booted = re.search(r"node: ksi-\S+ up \(pasta\) (.*)$", log, re.M)
        assert booted and "systemd" in booted.group(1) and "containerd" not in booted.group(1), log[-3000:]
    assert len(set(addresses.values())) == WIDE
    # the mesh was the job's: one copy of the node image served all 16 hosts, and it is still there for the next
    entries = wide.sh(f"ls {SHARED_CACHE}/v1").stdout.split()
    assert len([e for e in entries if re.fullmatch(r"[0-9a-f]{64}", e)]) == 1
    wide.assert_nothing_left(job, hosts)
